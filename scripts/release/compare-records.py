#!/usr/bin/env python3
"""Compares two builds' `classify` records of the same documents (JSON Lines, in the same order).

Usage: scripts/release/compare-records.py REFERENCE.jsonl OTHER.jsonl [--tolerance P]

Prints how many labels and exit cells (sentence, layer) agree and the largest difference of a
class probability, with the document it came from. Exits 1 when a label differs, a document is
missing or a record is an error; a probability difference above the tolerance (default 1e-3) is
reported, not failed: builds whose kernels round differently (arm64 and x86-64, or two x86-64
CPU variants) differ there while answering the same.
"""

import argparse
import json
import sys


def records(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("other")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    arguments = parser.parse_args()
    reference, other = records(arguments.reference), records(arguments.other)
    problems = []
    if [record.get("id") for record in reference] != [record.get("id") for record in other]:
        problems.append(f"the documents differ ({len(reference)} against {len(other)} records)")
    errors = [record["id"] for record in reference + other if "error" in record]
    if errors:
        problems.append(f"{len(errors)} records are errors, first `{errors[0]}`")
    pairs = [(first, second) for first, second in zip(reference, other) if "error" not in first and "error" not in second]
    labels = sum(first["label"] == second["label"] for first, second in pairs)
    cells = sum(
        (first["exit"]["sentence"], first["exit"]["layer"]) == (second["exit"]["sentence"], second["exit"]["layer"])
        for first, second in pairs
    )
    largest, where = 0.0, None
    above = 0
    for first, second in pairs:
        difference = max(abs(first["probs"][name] - second["probs"][name]) for name in first["probs"])
        above += difference > arguments.tolerance
        if difference > largest:
            largest, where = difference, first["id"]
    print(f"documents          {len(pairs)}")
    print(f"labels equal       {labels} of {len(pairs)}")
    print(f"exit cells equal   {cells} of {len(pairs)}")
    print(f"largest difference {largest:.6f}" + (f" (`{where}`)" if where else ""))
    print(f"above {arguments.tolerance:g}         {above} of {len(pairs)}")
    if labels != len(pairs):
        problems.append(f"{len(pairs) - labels} labels differ")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
