"""Generate the seeded staffing fixture ``workers_N.csv``.

    python scripts/gen_workers.py --rows 500000 --out bench/out/workers_500k.csv --seed 42

Deterministic for a given ``--rows`` and ``--seed`` (stdlib only). Columns:
worker_id, first_name, last_name, email, phone, role (~30), state (skewed so
IL is the most common), city, zip (5 digits, leading zeros for New England /
New Jersey), hourly_rate, years_experience, hired_on (ISO date), is_active
(true/false), skills (quoted, with commas), last_shift_at (ISO timestamp),
notes (mostly empty; sometimes with quotes and embedded newlines).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys
import time
from pathlib import Path


def _words(text: str) -> list[str]:
    return text.split()


HEADER = [
    "worker_id", "first_name", "last_name", "email", "phone", "role", "state", "city",
    "zip", "hourly_rate", "years_experience", "hired_on", "is_active", "skills",
    "last_shift_at", "notes",
]  # fmt: skip

FIRST = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Carlos Karen Daniel Lisa Matthew Nancy Anthony "
    "Betty Mark Sandra Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle "
    "Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca "
    "José Zoë Nguyễn Aoife"
)
LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White "
    "Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts "
    "O'Brien Kowalski Müller"
)
ROLES = [
    "Forklift Operator", "Warehouse Associate", "Picker", "Packer", "Shipping Clerk",
    "Receiving Clerk", "Inventory Specialist", "Machine Operator", "Assembler",
    "Quality Inspector", "Maintenance Technician", "Electrician", "Welder", "CNC Machinist",
    "Line Cook", "Prep Cook", "Dishwasher", "Server", "Bartender", "Housekeeper",
    "Janitor", "Security Guard", "Receptionist", "Data Entry Clerk", "Customer Service Rep",
    "Delivery Driver", "CDL Driver", "Loader", "Production Supervisor", "Medical Assistant",
]  # fmt: skip
# state -> (weight, [(city, zip prefix)]); IL dominates, several zips start with 0.
STATES: dict[str, tuple[int, list[tuple[str, str]]]] = {
    "IL": (30, [("Chicago", "606"), ("Aurora", "605"), ("Naperville", "605"),
                ("Joliet", "604"), ("Rockford", "611"), ("Peoria", "616")]),
    "IN": (8, [("Indianapolis", "462"), ("Gary", "464")]),
    "WI": (7, [("Milwaukee", "532"), ("Madison", "537")]),
    "TX": (8, [("Houston", "770"), ("Dallas", "752"), ("Austin", "787")]),
    "CA": (7, [("Los Angeles", "900"), ("San Jose", "951")]),
    "NY": (6, [("New York", "100"), ("Buffalo", "142")]),
    "MA": (6, [("Boston", "021"), ("Worcester", "016")]),
    "NJ": (6, [("Newark", "071"), ("Jersey City", "073")]),
    "CT": (4, [("Hartford", "061"), ("New Haven", "065")]),
    "PR": (2, [("San Juan", "009")]),
    "OH": (6, [("Columbus", "432"), ("Cleveland", "441")]),
    "GA": (5, [("Atlanta", "303")]),
    "AZ": (5, [("Phoenix", "850")]),
}  # fmt: skip
SKILLS = [
    "forklift", "OSHA 10", "OSHA 30", "RF scanner", "pallet jack", "bilingual", "first aid",
    "CPR", "SAP", "Excel", "inventory", "welding", "blueprints", "food safety", "POS",
    "customer service", "CDL-A", "hazmat", "lockout/tagout", "5S", "lean", "6\" ruler",
]  # fmt: skip
NOTES = [
    'Prefers "night" shifts',
    "Reliable, punctual",
    "Left early twice;\nfollow up with supervisor",
    'Said "no" to overtime, twice',
    "Certified trainer\r\nCan mentor new hires",
    "Needs ride on Mondays",
    "Ask about rehire — ok'd by HR",
]
EPOCH = dt.date(2005, 1, 1)
SHIFT_EPOCH = dt.datetime(2024, 1, 1)


def generate(rows: int, out: Path, seed: int = 42) -> None:
    """Write ``rows`` data rows (plus the header) to ``out``."""
    rng = random.Random(seed)
    state_names = list(STATES)
    state_weights = [STATES[s][0] for s in state_names]
    # Pre-draw in bulk: random.choices with cum_weights is much faster per row.
    cum: list[int] = []
    total = 0
    for weight in state_weights:
        total += weight
        cum.append(total)
    states = rng.choices(state_names, cum_weights=cum, k=rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        batch: list[list[object]] = []
        randint, random_, choice, sample = rng.randint, rng.random, rng.choice, rng.sample
        for i in range(rows):
            state = states[i]
            city, prefix = choice(STATES[state][1])
            first, last = choice(FIRST), choice(LAST)
            hired = EPOCH + dt.timedelta(days=randint(0, 7000))
            shift = SHIFT_EPOCH + dt.timedelta(seconds=randint(0, 60 * 86400))
            roll = random_()
            note = "" if roll < 0.8 else choice(NOTES)
            batch.append(
                [
                    100000 + i,
                    first,
                    last,
                    f"{first.lower()}.{last.lower()}{i}@example.com",
                    f"({randint(200, 989)}) 555-{randint(0, 9999):04d}",
                    choice(ROLES),
                    state,
                    city,
                    f"{prefix}{randint(0, 99):02d}",
                    f"{randint(1500, 6500) / 100:.2f}",
                    randint(0, 40),
                    hired.isoformat(),
                    "true" if roll < 0.85 or roll > 0.97 else "false",
                    ", ".join(sample(SKILLS, randint(1, 4))),
                    shift.isoformat(sep=" "),
                    note,
                ]
            )
            if len(batch) >= 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)


def ensure_generated(rows: int, out: Path, seed: int = 42) -> Path:
    """``out``, generated first if it does not exist yet (the benches' and tests' fixtures).

    Written under a temporary name and renamed, so an interrupted run never
    leaves a truncated file that a later run would take as the fixture.
    """
    if not out.exists():
        partial = out.with_name(f".{out.name}.partial")
        generate(rows, partial, seed)
        partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=None, help="default: workers_<N>.csv")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    out = args.out or Path(f"workers_{args.rows}.csv")
    started = time.perf_counter()
    generate(args.rows, out, args.seed)
    took = time.perf_counter() - started
    print(f"wrote {args.rows} rows to {out} in {took:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
