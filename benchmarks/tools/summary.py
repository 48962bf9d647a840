"""The machine-readable summary of real-data results, ``benchmarks/results/summary.json``, and the README
table made from it.

Each entry: ``{"value", "target", "command", "params", "commit", "wall_s", "machine", ...}`` (DA entries also
``std``, ``n_seeds``, ``per_seed``, ``usps_frame``).

    python benchmarks/tools/summary.py add-da WORKDIR/results.json ARM SETTING KEY [--target 0.9]
        # an entry from benchmarks/realdata/da_runs.py's results (mean ± std over its seeds)
    python benchmarks/tools/summary.py add-adabn KEY WORKDIR/ARM/metrics/da/PAIR.json
        # KEY@adabn: entry KEY's models, scored with AdaBN by evaluate_da (its metrics JSON)
    python benchmarks/tools/summary.py add-metric KEY METRICS_JSON FIELD --command ... --params ... --wall-s ...
        # an entry from one metrics JSON written by a pipeline stage (e.g. metrics/cond/acgan.json accuracy)
    python benchmarks/tools/summary.py readme        # rewrite the table of docs/results-real-data.md
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "benchmarks/results/summary.json"
BEGIN, END = "<!-- results:begin (benchmarks/tools/summary.py readme) -->", "<!-- results:end -->"

# What the course seeds (or the method's paper) reported for the same experiment.
REFERENCE = {
    "da/mnistm-usps/dann": "88.2 % (seeds' DANN)",
    "da/mnistm-usps/best": "88.3 % (seeds' best)",
    "da/mnistm-usps/source_only": "–",
    "da/mnistm-usps/target_only": "–",
    "da/mnist-mnistm/dann": "76.7 % (Ganin et al.)",
    "da/mnist-mnistm/source_only": "52.3 % (Ganin et al.)",
    "cond/acgan/accuracy": "82.5 % (seeds' ACGAN)",
    "cond/ddpm/accuracy": "–",
    "faces/dcgan/face_rate": "–",
    "faces/dcgan_tricks/face_rate": "–",
}


def load() -> dict:
    return json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}


def save(summary: dict) -> None:
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")


def da_entry(results: dict, arm: str, setting: str, target: float | None) -> dict:
    """A summary entry for ``setting`` of ``arm`` in a :mod:`benchmarks.da_runs` results dict."""
    a = results["arms"][arm]
    r = a["settings"][setting]
    walls = [w for w in r["train_wall_s_per_seed"].values() if w is not None]
    frame = next((o.split("=", 1)[1] for o in a["overrides"] if o.startswith("data.usps_frame=")), None)
    if frame is None and "usps" in results["pair"]:
        from genda.config import read_yaml

        frame = read_yaml(Path(results["config"]) if Path(results["config"]).is_absolute()
                          else ROOT / results["config"])["data"].get("usps_frame", "fill")
    return {"value": round(r["target_acc"], 4), "std": round(r["target_acc_std"], 4), "n_seeds": len(r["per_seed"]),
            "per_seed": {k: round(v, 4) for k, v in r["per_seed"].items()}, "target": target,
            **({"usps_frame": frame} if frame else {}), "setting": setting,
            "command": results["command"] + f"   (arm {arm!r}; results in WORKDIR/{arm}/metrics/da/{results['pair']}.json)",
            "params": f"{results['config']} + overrides {a['overrides']} (WORKDIR/{arm}/params_all.yaml)",
            "commit": results["commit"], "wall_s": round(sum(walls)),
            "wall_note": "sum of the per-seed training wall times (process start included, curve evaluations "
                         "excluded from the curve's own wall_s); " + results["threads"],
            "machine": results["machine"]}


def adabn_entry(base: dict, metrics: dict, setting: str) -> dict:
    """Entry ``base`` (a DA result) with the AdaBN target accuracy of the same models (``target_acc_adabn`` of
    ``evaluate_da``'s metrics for ``setting``): BatchNorm statistics re-estimated on the target training images."""
    m = metrics[setting]
    if "target_acc_adabn" not in m:
        raise SystemExit(f"no target_acc_adabn for {setting!r}: rerun stages/evaluate_da.py in that workdir")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {**base, "value": round(m["target_acc_adabn"], 4), "std": round(m["target_acc_adabn_std"], 4),
            "per_seed": {k: round(v["target_acc_adabn"], 4) for k, v in m["per_seed"].items()},
            "per_seed_without_adabn": base.get("per_seed"),
            "commit": f"{base['commit']} (training); AdaBN scores by stages/evaluate_da.py in the same workdir "
                      f"at {head.stdout.strip()}"}


def table(summary: dict) -> str:
    lines = ["| result | genda | target | seeds / paper | wall (s) | machine |", "|---|---|---|---|---|---|"]
    for key, e in summary.items():
        v = e["value"]
        pct = isinstance(v, float) and v <= 1.0
        t = e.get("target")
        near = pct and t is not None and v < t and f"{100 * v:.1f}" == f"{100 * t:.1f}"  # 96.98 is not 97.0
        val = f"{100 * v:.{2 if near else 1}f} %" if pct else f"{v}"
        if e.get("std") is not None and e.get("n_seeds", 1) > 1:
            val += f" ± {100 * e['std']:.1f}" if pct else f" ± {e['std']}"
            val += f" ({e['n_seeds']} {'sampling ' if str(e.get('seeds_are', '')).startswith('sampling') else ''}seeds)"
        if e.get("usps_frame"):
            val += f", USPS `{e['usps_frame']}`"
        tgt = "–" if t is None else (f"≥ {100 * t:.0f} %" if isinstance(t, float) and t <= 1 else f"{t}")
        met = "" if t is None else (" ✓" if v >= t else " ✗")
        lines.append(f"| `{key}` | {val}{met} | {tgt} | {REFERENCE.get(key.split('@')[0], '–')} | "
                     f"{e.get('wall_s', '–')} | {e.get('machine', '–')} |")
    return "\n".join(lines)


def write_readme() -> None:
    readme = ROOT / "docs/results-real-data.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"docs/results-real-data.md has no {BEGIN} ... {END} block")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{table(load())}\n{END}", text,
                 flags=re.S)
    readme.write_text(new)


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("add-da")
    d.add_argument("results", type=Path); d.add_argument("arm"); d.add_argument("setting"); d.add_argument("key")
    d.add_argument("--target", type=float)
    m = sub.add_parser("add-metric")
    m.add_argument("key"); m.add_argument("metrics", type=Path); m.add_argument("field")
    m.add_argument("--target", type=float); m.add_argument("--command", required=True)
    m.add_argument("--params", required=True); m.add_argument("--wall-s", type=float, required=True)
    m.add_argument("--commit", required=True); m.add_argument("--note", default="")
    b = sub.add_parser("add-adabn")
    b.add_argument("key"); b.add_argument("metrics", type=Path)
    sub.add_parser("readme")
    a = ap.parse_args()
    s = load()
    if a.cmd == "add-da":
        s[a.key] = da_entry(json.loads(a.results.read_text()), a.arm, a.setting, a.target)
    elif a.cmd == "add-metric":
        mj = json.loads(a.metrics.read_text())
        env = mj.get("env", {})
        s[a.key] = {"value": round(float(mj[a.field]), 4), "target": a.target, "command": a.command,
                    "params": a.params, "commit": a.commit, "wall_s": round(a.wall_s),
                    "machine": f"{env.get('cpu_cores', '?')}-core {env.get('cpu', '?')} ({env.get('cpu_isa', '?')}), "
                               f"device {env.get('device', '?')}, torch {env.get('torch', '?')}",
                    **({"note": a.note} if a.note else {})}
    elif a.cmd == "add-adabn":
        base = s[a.key]
        setting = base.get("setting") or a.key.split("/")[2].split("@")[0]
        a.key = f"{a.key}@adabn" if "@" not in a.key else f"{a.key},adabn"
        s[a.key] = adabn_entry(base, json.loads(a.metrics.read_text()), setting)
    if a.cmd != "readme":
        save(s)
        print(json.dumps(s[a.key], indent=1))
    write_readme()


if __name__ == "__main__":
    main()
