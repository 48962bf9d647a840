"""The headline results of a run: one small JSON per method (DVC metrics, so ``dvc metrics show`` fits a terminal)
and the same numbers as one Markdown table (the README's results table).

Every row file holds a few keys from one short vocabulary, so ``dvc metrics show`` prints one line per method and
one column per key:

* ``acc``: the method's accuracy — the classifier's real test accuracy, a conditional generator's generated-digit
  (or requested-attribute / lowest tag-group) accuracy by the pipeline's classifier, a DA setting's target test
  accuracy (mean over seeds);
* ``src``: a DA setting's source test accuracy (mean over seeds);
* ``fid``, ``kid``, ``is``: FID, KID and Inception Score of the generated images (extractor named in the detailed
  metrics JSON);
* ``faces``: the fraction of generated faces the face detector finds;
* ``gain``, ``content``, ``ips``, ``speedup``: a style's MSG-Net output — how many times lower its style loss is
  than the content image's, its content loss, stylised images/s at 256x256 and the speed-up over Gatys (the
  loss network is named in ``metrics/style/<style>.json``).

The detailed JSONs (``metrics/**``) stay as they are, plain outputs of their stages.

``summary/headline.json`` (+ ``summary/headline.md``) is the results table with one named row per number
(``da/<pair>/<setting>``, ``da/<pair>/best``, ``cond/<digits>/accuracy``, ``cond/<attr>/attr_accuracy``,
``cond/<tags>/tag_accuracy``, ``cond/<face method>/face_rate``, ``cond/<attr>/identity_ratio``,
``cond/classifier/real_acc``, ``faces/<gan>/fid``, ``faces/<gan>/face_rate``): ``value`` (accuracies and rates as
fractions), ``std`` and
``per_seed`` over the DA seeds, ``n_seeds``, the training wall time (a face GAN's: the wall its ``train_gan`` stage
recorded, on its ``fid`` row), the machine and the stage that produced it, and
for the rows ``summary.targets`` names, ``target`` and ``met`` (a target given as another row's name compares with
that row's value on the same run, e.g. a face GAN's FID against Method A's, and keeps the name as ``target_row``); at the top ``total_train_wall_s``, the training
seconds of every row summed, and ``total_wall_s``, the wall time of every stage that recorded one in ``walls/``
(:mod:`genda.runtime.walls`), with ``stage_wall_s`` per stage and ``walls_machines``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from genda.errors import DataError
from genda.train.timing import read_timing
from genda.runtime.records import write_json

DIGITS = 4  # decimals kept in the row files (acc, kid, faces)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"summary: {path} is missing (run the stage that writes it)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"summary: {path} is not valid JSON ({e})") from None


def _r(v, nd: int = DIGITS):
    return None if v is None else round(float(v), nd)


def _image_scores(m: dict) -> dict:
    return {"fid": _r(m.get("fid"), 2), "kid": _r(m.get("kid_mean")), "is": _r(m.get("is_mean"), 2),
            "faces": _r(m.get("face_rate"))}


def rows(params: dict, root: Path = Path(".")) -> dict[str, dict]:
    """``{"<family>/<name>": {key: value}}`` for every method of the run, from the detailed metrics under
    ``root/metrics``; keys with no value for a method are left out."""
    m = root / "metrics"
    out: dict[str, dict] = {"classifier": {"acc": _r(_load(m / "classifier.json")["test_acc"])}}
    for name in params["face_gans"]:
        out[f"gan/{name}"] = _image_scores(_load(m / "gan" / name / "eval.json"))
    for name in params["cond_gens"]:
        c = _load(m / "cond" / f"{name}.json")
        acc = c.get("accuracy", c.get("attr_accuracy", c.get("tag_accuracy")))
        # digits: FID in the pipeline classifier's feature space (its KID/IS by a face extractor mean little)
        row = {"acc": _r(acc), "fid": _r(c["digit_fid"], 2)} if "digit_fid" in c else {"acc": _r(acc), **_image_scores(c)}
        out[f"cond/{name}"] = row
    for pair in params["da"]["pairs"]:
        d = _load(m / "da" / f"{pair}.json")
        for setting in params["da"]["settings"]:
            if setting not in d:
                raise DataError(f"summary: {m / 'da' / f'{pair}.json'} has no setting {setting!r}")
            out[f"da/{pair}/{setting}"] = {"acc": _r(d[setting]["target_acc"]), "src": _r(d[setting]["source_acc"])}
    for style in (params.get("style") or {}).get("styles", []):  # style transfer, by the loss network named in
        st = _load(m / "style" / f"{style}.json")                    # metrics/style/<style>.json
        out[f"style/{style}"] = {"gain": _r(st["style_loss_content_image"] / st["style_loss"], 1),
                                 "content": _r(st["content_loss"]), "ips": _r(st["images_per_s"], 1),
                                 "speedup": _r(st["speedup_vs_gatys"], 0)}
    return {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in out.items()}


def _pct(v, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f} %"


def _pct_digits(v: float, target: float | None, met: bool | None) -> int:
    """Decimals for ``v`` as a percentage: one, or, for a missed target, as many more as it takes not to print the
    target's number (0.84954 against 0.85: "84.95 %", not "85.0 %" beside "≥ 85.0 % ✗")."""
    digits = 1
    while target is not None and not met and digits < 4 and _pct(v, digits) == _pct(target, digits):
        digits += 1
    return digits


def _num(v, fmt: str = "{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def table(params: dict, rows_: dict[str, dict]) -> str:
    """The Markdown tables of :func:`rows` (face GANs, conditional generators, domain adaptation)."""
    n_seeds = len(params["da"]["seeds"])
    lines = ["| face GAN | FID | KID | IS | faces detected |", "|---|---|---|---|---|"]
    lines += [f"| {k.split('/', 1)[1]} | {_num(r.get('fid'))} | {_num(r.get('kid'), '{:.4f}')} | {_num(r.get('is'))} "
              f"| {_pct(r.get('faces'))} |" for k, r in rows_.items() if k.startswith("gan/")]
    lines += ["", f"| conditional generator | accuracy | FID | faces detected |", "|---|---|---|---|"]
    lines += [f"| {k.split('/', 1)[1]} | {_pct(r.get('acc'))} | {_num(r.get('fid'))} | {_pct(r.get('faces'))} |"
              for k, r in rows_.items() if k.startswith("cond/")]
    lines += ["", f"| DA pair | setting | target accuracy | source accuracy |", "|---|---|---|---|"]
    lines += [f"| {k.split('/')[1]} | {k.split('/')[2]} | {_pct(r['acc'])} | {_pct(r['src'])} |"
              for k, r in rows_.items() if k.startswith("da/")]
    styles = [(k.split("/", 1)[1], r) for k, r in rows_.items() if k.startswith("style/")]
    if styles:
        lines += ["", "| style (MSG-Net) | style loss, x lower than the content image's | content loss | images/s "
                      "(256²) | speed-up vs Gatys |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {r['gain']:.1f}× | {r['content']:.4f} | {r['ips']:.1f} | {r['speedup']:.0f}× |"
                  for name, r in styles]
    lines += ["", f"Digit classifier (scores the generated digits): {_pct(rows_['classifier']['acc'])} real test "
                  f"accuracy. DA accuracies: mean over {n_seeds} seed{'s' if n_seeds > 1 else ''}. Conditional digits: "
                  "FID in the classifier's feature space; faces: FID by the extractor named in `metrics/`"
                  + ("; styles: losses by the loss network named in `metrics/style/`." if styles else ".")]
    return "\n".join(lines) + "\n"


def write(params: dict, root: Path = Path("."), out: Path = Path("summary")) -> dict[str, dict]:
    """Write ``out/metrics/<row>.json`` for every row (the folder is rewritten: no stale rows), ``out/table.md``,
    and the named results table ``out/headline.json`` / ``out/headline.md``."""
    r = rows(params, root)
    shutil.rmtree(out / "metrics", ignore_errors=True)
    for key, values in r.items():
        write_json(values, out / "metrics" / f"{key}.json")
    (out / "table.md").write_text(table(params, r))
    h = headline(params, root)
    write_json(h, out / "headline.json")
    (out / "headline.md").write_text(headline_table(h))
    return r


def _timing(path: Path, model_files: list[str]) -> float | None:
    """Training seconds of ``model_files`` summed, from a timing file (None where there is none)."""
    if not path.exists():
        return None
    return round(sum(read_timing(path, f)["train_seconds"] for f in model_files), 1)


def _machine(env: dict | None) -> str:
    """The CPU (or GPU) a metrics file's ``env`` names, with the instruction sets and threads that decide speed."""
    if not env:
        return "unknown"
    if env.get("device", "cpu") != "cpu":
        return env["device"]
    return f"{env.get('cpu', '?')} ({env.get('cpu_isa', '?')}; {env.get('threads', '?')} threads)"


def _trained_on(env: dict | None, wall: dict | None) -> str:
    """The machine of a row whose stage is a *training* stage scored by a later evaluation: the evaluation's
    ``env`` names the CPU and its instruction sets, the training stage's wall record (:mod:`genda.runtime.walls`)
    its thread count (a record without one, ``default``, keeps the evaluation's); a training recorded on another CPU
    than the evaluation's is named by its wall record alone."""
    if not wall or not wall.get("machine"):
        return _machine(env)
    threads = str(wall.get("threads", ""))
    if env and env.get("device", "cpu") == "cpu" and env.get("cpu") and env["cpu"] in wall["machine"]:
        return _machine({**env, "threads": threads if threads.isdigit() else env.get("threads", "?")})
    return f"{wall['machine']} ({threads if threads.isdigit() else '?'} threads)"


def lower_is_better(key: str) -> bool:
    """FIDs and identity ratios: at most their target; accuracies and rates: at least."""
    return key.endswith(("/fid", "/identity_ratio"))


def headline(params: dict, root: Path = Path(".")) -> dict:
    """The named results rows (module doc) from the detailed metrics and timing files under ``root/metrics``."""
    m = root / "metrics"
    out: dict[str, dict] = {}

    def row(key, value, stage, env, **extra):
        out[key] = {"value": _r(value), "stage": stage, "machine": _machine(env), **extra}

    walls = stage_walls(root / "walls")
    clf = _load(m / "classifier.json")
    row("cond/classifier/real_acc", clf["test_acc"], "train_classifier", clf.get("env"))
    for name in params["face_gans"]:
        g = _load(m / "gan" / name / "eval.json")
        # the face GANs keep no timing file: their training time is the train_gan stage's recorded wall
        gan_wall = walls.get(f"train_gan@{name}", {}).get("wall_s")
        row(f"faces/{name}/fid", g["fid"], f"evaluate_gan@{name}", g.get("env"), extractor=g.get("extractor"),
            train_wall_s=gan_wall)
        row(f"faces/{name}/face_rate", g["face_rate"], f"evaluate_gan@{name}", g.get("env"))
    for name in params["cond_gens"]:
        c = _load(m / "cond" / f"{name}.json")
        wall = _timing(m / "cond" / name / "timing.json", ["model.pt"])
        for key in ("accuracy", "attr_accuracy", "tag_accuracy"):  # digits; attr_acgan; tag_cdcgan (lowest group)
            if c.get(key) is not None:
                row(f"cond/{name}/{key}", c[key], f"evaluate_cond@{name}", c.get("env"), train_wall_s=wall)
        if c.get("face_rate") is not None:  # the face generators: faces detected too
            row(f"cond/{name}/face_rate", c["face_rate"], f"evaluate_cond@{name}", c.get("env"))
        if c.get("identity_ratio") is not None:  # attr_acgan: do its off/on pairs keep the identity?
            row(f"cond/{name}/identity_ratio", c["identity_ratio"], f"evaluate_cond@{name}", c.get("env"),
                feature_space=c.get("identity_feature_space"))
    seeds = params["da"]["seeds"]
    for pair in params["da"]["pairs"]:
        d = _load(m / "da" / f"{pair}.json")
        for setting in params["da"]["settings"]:
            s = d[setting]
            per = {str(k): _r(v["target_acc"]) for k, v in sorted(s.get("per_seed", {}).items())}
            stage = f"train_da@{pair}-{setting}"
            row(f"da/{pair}/{setting}", s["target_acc"], stage, d.get("env"),
                std=_r(s.get("target_acc_std", 0.0)), n_seeds=s.get("n_seeds", len(seeds)), per_seed=per,
                train_wall_s=_timing(m / "da" / pair / setting / "timing.json", [f"seed{k}.pt" for k in seeds]))
            out[f"da/{pair}/{setting}"]["machine"] = _trained_on(d.get("env"), walls.get(stage))
        adapting = [s for s in params["da"]["settings"] if s not in ("source_only", "target_only")]
        if adapting:
            best = max(adapting, key=lambda s: d[s]["target_acc"])
            out[f"da/{pair}/best"] = {**out[f"da/{pair}/{best}"], "method": best}
    for key, target in ((params.get("summary") or {}).get("targets") or {}).items():
        for k in (key, target) if isinstance(target, str) else (key,):
            if k not in out:
                raise DataError(f"summary: params 'summary.targets' names {k!r}, which is no result row of this run; "
                                f"rows: {', '.join(out)}")
        extra = {"target_row": target} if isinstance(target, str) else {}
        target = out[target]["value"] if isinstance(target, str) else target  # e.g. FID <= Method A's on this run
        met = out[key]["value"] <= target if lower_is_better(key) else out[key]["value"] >= target
        out[key] = {**out[key], "target": target, **extra, "met": bool(met)}
    total = sum(r.get("train_wall_s") or 0.0 for k, r in out.items() if not k.endswith("/best"))
    return {"total_wall_s": round(sum(w["wall_s"] for w in walls.values()), 1),
            "stage_wall_s": {k: w["wall_s"] for k, w in walls.items()},
            "walls_machines": sorted({w.get("machine", "?") for w in walls.values()}),
            "total_train_wall_s": round(total, 1), "rows": out,
            "row_order": list(out)}  # the table's order (classifier, faces, digits, DA pairs); JSON keys are sorted


def stage_walls(folder: Path) -> dict[str, dict]:
    """``{stage: record}`` of the wall records in ``folder`` (``walls/<stage>.json``), by stage name; a record
    without ``stage`` / ``wall_s`` is a :class:`DataError` naming the file."""
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rec = _load(f)
        if not isinstance(rec, dict) or not isinstance(rec.get("stage"), str) \
                or not isinstance(rec.get("wall_s"), (int, float)):
            raise DataError(f"summary: {f} is no wall record (needs 'stage' and a number 'wall_s')")
        out[rec["stage"]] = rec
    return dict(sorted(out.items()))


def _walls_table(h: dict) -> list[str]:
    """Stage walls summed per stage kind (``train_da@x`` -> ``train_da``)."""
    kinds: dict[str, list[float]] = {}
    for stage, w in h.get("stage_wall_s", {}).items():
        kinds.setdefault(stage.split("@")[0], []).append(w)
    if not kinds:
        return []
    lines = ["", f"Wall time of the {len(h['stage_wall_s'])} stages that recorded one (`walls/`): "
                 f"**{h['total_wall_s'] / 3600:.2f} h** ({'; '.join(h['walls_machines'])}); per stage in "
                 "`headline.json` (`stage_wall_s`).", "", "| stage | runs | wall |", "|---|---|---|"]
    for kind, ws in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"| `{kind}` | {len(ws)} | {sum(ws) / 60:.1f} min |")
    return lines


def headline_table(h: dict) -> str:
    """The Markdown of :func:`headline`."""
    machines = {r["machine"] for r in h["rows"].values()}
    shared = machines.pop() if len(machines) == 1 else None  # one machine: say it once, under the table
    lines = ["| result | value | target | over seeds | training wall | stage |" + ("" if shared else " machine |"),
             "|---|---|---|---|---|---|" + ("" if shared else "---|")]
    for key in h.get("row_order", h["rows"]):
        r = h["rows"][key]
        is_fid = lower_is_better(key)  # FIDs and identity ratios: numbers; accuracies and rates: percentages
        # a "best" row repeats a method's row: printed with that row's decimals too (not 85.0 % beside 84.95 % ✗)
        same = h["rows"].get(f"{key.rsplit('/', 1)[0]}/{r['method']}", {}) if "method" in r else {}
        digits = max(_pct_digits(r["value"], r.get("target"), r.get("met")),
                     _pct_digits(same["value"], same.get("target"), same.get("met")) if same else 1)
        shown = _pct(r["value"], digits)
        v = _num(r["value"], "{:.3f}" if key.endswith("/identity_ratio") else "{:.2f}") if is_fid else shown
        seeds = (f"{shown} ± {100 * r['std']:.1f} ({r['n_seeds']} seeds)" if r.get("n_seeds", 1) > 1
                 else "–")
        wall = "–" if r.get("train_wall_s") is None else f"{r['train_wall_s'] / 60:.1f} min"
        what = f" ({r['method']})" if "method" in r else ""
        target = "–"
        if "target" in r:
            target = ((f"≤ {_num(r['target'])}" if is_fid else f"≥ {_pct(r['target'])}")
                      + (f" (`{r['target_row']}`)" if r.get("target_row") else "") + (" ✓" if r["met"] else " ✗"))
        lines.append(f"| `{key}`{what} | {v} | {target} | {seeds} | {wall} | `{r['stage']}` |"
                     + ("" if shared else f" {r['machine']} |"))
    if shared:
        lines += ["", f"Every row measured on: {shared}."]
    lines += ["", f"Training wall time of every row, summed: {h['total_train_wall_s'] / 3600:.2f} h."]
    lines += _walls_table(h)
    return "\n".join(lines) + "\n"
