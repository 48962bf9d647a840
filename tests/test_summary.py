"""benchmarks/results/summary.json (issue 9's machine-readable results) and the README table generated from it."""
from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks/tools"))
import summary  # noqa: E402

REQUIRED = ("value", "target", "command", "params", "commit", "wall_s", "machine")


def test_every_entry_carries_value_target_and_provenance():
    entries = summary.load()
    for key in ("da/mnistm-usps/dann", "da/mnistm-usps/best", "da/mnist-mnistm/dann", "cond/acgan/accuracy",
                "faces/dcgan_tricks/face_rate"):
        assert key in entries, key
    for key, e in entries.items():
        missing = [f for f in REQUIRED if f not in e]
        assert not missing, f"{key}: missing {missing}"
        assert isinstance(e["value"], (int, float)) and 0 <= e["value"] <= 1, key
        assert e["target"] is None or 0 < e["target"] <= 1, key
        assert all(isinstance(e[f], str) and e[f] for f in ("command", "params", "commit", "machine")), key
        assert e["wall_s"] > 0, key
        if "per_seed" in e and e.get("n_seeds", 1) > 1:
            vals = list(e["per_seed"].values())
            assert len(vals) == e["n_seeds"] and abs(sum(vals) / len(vals) - e["value"]) < 6e-4, key


def test_real_data_table_is_generated_from_the_summary():
    text = (ROOT / "docs/results-real-data.md").read_text()
    block = text.split(summary.BEGIN, 1)[1].split(summary.END, 1)[0].strip()
    assert block == summary.table(summary.load()).strip()
    # a met target is marked, an unmet one too
    assert "| `cond/acgan/accuracy` | 97.8 % ✓ |" in block


def test_a_value_just_under_its_target_is_not_rounded_up_to_it():
    base = {"command": "c", "params": "p", "commit": "x", "wall_s": 1, "machine": "m"}
    t = summary.table({"a": {**base, "value": 0.9698, "target": 0.97, "std": 0.002, "n_seeds": 3},
                       "b": {**base, "value": 0.9702, "target": 0.97},
                       "c": {**base, "value": 0.88, "target": 0.9, "std": 0.03, "n_seeds": 3}})
    assert "| `a` | 96.98 % ± 0.2 (3 seeds) ✗ |" in t
    assert "| `b` | 97.0 % ✓ |" in t
    assert "| `c` | 88.0 % ± 3.0 (3 seeds) ✗ |" in t
