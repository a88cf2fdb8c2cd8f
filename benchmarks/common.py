"""Shared output of the benchmark scripts: a table for people, JSON for machines."""

from __future__ import annotations

import json


def emit(results: list[dict], table: list[str], json_path: str | None) -> None:
    """Print the table lines and the JSON of ``results``; also write the JSON to ``json_path``."""
    print("\n".join(table))
    text = json.dumps(results, indent=2)
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")
