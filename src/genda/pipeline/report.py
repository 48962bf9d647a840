"""The one-page report: every metric table and figure the pipeline produced, with provenance."""
from __future__ import annotations

import json
from pathlib import Path

from genda.pipeline.cost_plot import cost_figure
from genda.pipeline.plots import accuracy_curve_figure, loss_figure
from genda.pipeline.profile import methods_elsewhere
from genda.pipeline.summary import stage_walls
from genda.runtime.tracking import git_commit
from genda.train.timing import curve_table

# Best numbers of the course's reference reports (NTU DLCV HW2 / MLDS HW3; target-test accuracy %, FID/IS). "seed"
# elsewhere in genda is always a random seed.
COURSE_DA_BEST = {"svhn-mnistm": 62.3, "mnistm-usps": 88.3, "usps-svhn": 42.8, "mnistm-svhn": 48.8}
COURSE_FACE = {"fid": 28.2, "is": 2.08}
COURSE_COND = {"acgan": "82.5 % (course reports' ACGAN)", "ddpm": "target ≥ 99.5 %"}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _f(v, fmt="{:.3f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def build_report(params: dict, root: Path = Path("."), out_dir: Path = Path("report")) -> Path:
    out_dir = root / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = lambda p: Path("..") / p  # noqa: E731  (report/ is one level down)
    sha, dirty = git_commit(root)
    lines = ["# genda report", "",
             f"Commit `{sha[:12]}`{' (uncommitted changes)' if dirty else ''} · data source `{params['data']['source']}`"
             f" · seed {params['seed']}. Every number below is produced by `dvc repro` from `params.yaml`;"
             " MLflow holds the per-step curves.", ""]
    headline = root / "summary/table.md"
    if headline.exists():  # stage summary: the headline numbers (also the README's results table)
        lines += ["## Headline", "", headline.read_text().rstrip(), ""]
    manifest = _load(root / "data/prepared/manifest.json")
    if manifest:
        lines += ["## Data", "", "| set | train | test | shape | what it is |", "|---|---|---|---|---|"]
        for d, m in manifest["digits"].items():
            lines.append(f"| {d} | {m['train']} | {m['test']} | {'×'.join(map(str, m['shape']))} | {m['description']} |")
        f = manifest["faces"]
        lines += [f"| faces | {f['train']} | {f['test']} | {'×'.join(map(str, f['shape']))} | {f['description']} |", ""]

    # ---- face GANs
    gans = list(params["face_gans"])
    if gans:
        lines += ["## Face generation (64×64)", "",
                  f"FID/IS/KID: torch-fidelity, {params['sample']['n_images']} generated vs the {params['evaluate']['fid_reference']} "
                  f"faces. Course reports: FID {COURSE_FACE['fid']}, IS {COURSE_FACE['is']} (Inception). "
                  "The extractor column says which network the features came from: numbers from the offline "
                  "fallback extractor are comparable only with each other. Faces detected: OpenCV's Haar cascade; the "
                  "real row is its rate on held-out real faces (what a perfect generator scores). It also fires on "
                  "some blurry face-shaped blobs, so read it beside FID and the grids.", "",
                  "| method | FID ↓ | IS ↑ | KID ↓ | faces detected | extractor |", "|---|---|---|---|---|---|"]
        floor = None
        for g in gans:
            m = _load(root / f"metrics/gan/{g}/eval.json") or {}
            floor = floor or (m if "fid_real_floor" in m else None)
            lines.append(f"| {g} | {_f(m.get('fid'), '{:.2f}')} | {_f(m.get('is_mean'), '{:.3f}')} | "
                         f"{_f(m.get('kid_mean'), '{:.4f}')} | {_f(m.get('face_rate'), '{:.1%}')} | {m.get('extractor', '–')} |")
        if floor:
            lines.append(f"| *real vs real ({floor['n_real_floor']} held-out faces)* | {_f(floor['fid_real_floor'], '{:.2f}')} | – | "
                         f"{_f(floor['kid_real_floor'], '{:.4f}')} | {_f(floor.get('face_rate_real'), '{:.1%}')} | "
                         f"{floor.get('extractor', '–')} |")
        lines.append("")
        for g in gans:
            grid = Path(f"samples/gan/{g}/grid.png")
            if (root / grid).exists():
                lines += [f"**{g}** — first 32 of the fixed-seed samples", "", f"![{g}]({rel(grid)})", ""]
        curves = {g: root / f"metrics/gan/{g}/losses.csv" for g in gans}
        fig = loss_figure(curves, ("loss_d", "loss_g"), out_dir / "gan_losses.png", "face-GAN losses")
        if fig:
            lines += ["Loss curves:", "", "![gan losses](gan_losses.png)", ""]
        lines += _cost_section(params, root, out_dir)
    lines += _elsewhere("face_gans", "Face GANs", params)

    lines += _conditional_section(params, root, out_dir, rel)
    lines += _elsewhere("cond_gens", "Conditional face generators", params)

    # ---- domain adaptation
    da = params["da"]
    lines += ["## Domain adaptation (digits)", "",
              f"Target-test accuracy, mean ± std over seeds {da['seeds']}; 'course best' is the best number in the course "
              "reports. Rows '+ AdaBN': the same models with their BatchNorm statistics re-estimated on the "
              "unlabelled target training images (no labels, no training).",
              "", "| pair | " + " | ".join(da["settings"]) + " | course best |",
              "|---" * (len(da["settings"]) + 2) + "|"]
    for pair in da["pairs"]:
        per_pair = _load(root / f"metrics/da/{pair}.json") or {}
        for label, key in ((pair, "target_acc"), (f"{pair} + AdaBN", "target_acc_adabn")):
            ms = [per_pair.get(s) or {} for s in da["settings"]]
            if key != "target_acc" and not any(key in m for m in ms):
                continue
            cells = [f"{100 * m[key]:.1f} ± {100 * m[key + '_std']:.1f}" if key in m else "–" for m in ms]
            best = COURSE_DA_BEST.get(pair) if key == "target_acc" else None
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {best if best is not None else '–'} |")
    lines += _da_network_lines(params)
    lines.append("")
    curves = {pair: curve_table(root / f"metrics/da/curves/{pair}.csv") for pair in da["pairs"]}
    if accuracy_curve_figure(curves, out_dir / "da_curves.png"):
        lines += ["Target-test accuracy during training against training wall time (`da.eval_every`; thin lines: "
                  "single seeds). It is reported, never used to pick a stopping point: the final model is scored.",
                  "", "![DA accuracy curves](da_curves.png)", ""]
    for pair in da["pairs"]:
        for s in da["settings"]:
            p = Path(f"plots/tsne/{pair}/{s}.png")
            if (root / p).exists():
                lines += [f"![t-SNE {pair} {s}]({rel(p)})", ""]
    lines += _style_section(params, root, rel)
    out = out_dir / "index.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def _da_network_lines(params: dict) -> list[str]:
    """One line naming, per pair, the settings that train French et al.'s larger digit network (``network: gp``,
    from ``da.methods.<setting>`` and its ``by_pair`` entry); nothing where every setting keeps its method's own."""
    from genda.config import da_setting_config

    da = params["da"]
    on_gp = {pair: [s for s in da["settings"] if da_setting_config(params, s, pair)[1].get("network") == "gp"]
             for pair in da["pairs"]}
    if not any(on_gp.values()):
        return []
    parts = [f"{pair}: {', '.join(ss)}" for pair, ss in on_gp.items() if ss]
    return ["", "Networks: French et al.'s 8-conv `grey-32-64-128-gp` (`network: gp`) for " + "; ".join(parts)
            + "; every other cell on its method's own network (DANN's: Ganin et al.'s 2-conv; docs/methods.md)."]


def _style_section(params: dict, root: Path, rel) -> list[str]:
    """Style transfer (MSG-Net): one table row per style of ``style.styles`` and the figure content | style |
    MSG-Net | Gatys; the loss network is named, as the metrics files name it."""
    ms = {s: _load(root / f"metrics/style/{s}.json") for s in (params.get("style") or {}).get("styles", [])}
    ms = {s: m for s, m in ms.items() if m}
    if not ms:
        return []
    nets = sorted({m["loss_network"] for m in ms.values()})
    lines = ["## Style transfer (MSG-Net)", "",
             f"Losses by the loss network {', '.join(f'`{n}`' for n in nets)} on held-out photos; 'content image': the "
             "style loss of the unstylised image; Gatys: per-image optimisation of the same objective. Speed at "
             "256×256 on this machine; speed-up = Gatys seconds per image / MSG-Net seconds per image.", "",
             "| style | style loss | content image | content loss | Gatys style loss | Gatys s / image | images/s "
             "| speed-up |", "|---|---|---|---|---|---|---|---|"]
    for s, m in ms.items():
        lines.append(f"| {s} | {_f(m['style_loss'], '{:.3g}')} | {_f(m['style_loss_content_image'], '{:.3g}')} | "
                     f"{_f(m['content_loss'], '{:.3g}')} | {_f(m.get('style_loss_gatys'), '{:.3g}')} | "
                     f"{_f(m.get('gatys_seconds_per_image'), '{:.1f}')} | {_f(m['images_per_s'], '{:.1f}')} | "
                     f"{_f(m['speedup_vs_gatys'], '{:.0f}')}× |")
    lines.append("")
    if (root / "plots/style/figure.png").exists():
        lines += [f"![style transfer: content | style | MSG-Net | Gatys]({rel(Path('plots/style/figure.png'))})", ""]
    return lines


def _face_condition_lines(gens: list[str], root: Path) -> list[str]:
    """attr_acgan: the attribute classifier's real accuracy and the identity measure of its off/on pairs;
    tag_cdcgan: each tag group's recognition rate and its classifier's real accuracy, per requested value the
    recognition rate and the faces detected."""
    lines = []
    for g in gens:
        m = _load(root / f"metrics/cond/{g}.json") or {}
        if "attr_accuracy" in m:
            lines.append(f"**{g}**: the requested '{m.get('attribute')}' state is recognised in "
                         f"{_f(m['attr_accuracy'], '{:.1%}')} of the generated faces (off / on: "
                         + " / ".join(_f(v, '{:.1%}') for _, v in sorted((m.get("attr_per_class_accuracy") or {})
                                                                           .items(), key=lambda kv: int(kv[0])))
                         + f") by an attribute classifier trained in the pipeline on the real faces (its accuracy "
                         f"on the real test faces: {_f(m.get('attr_classifier_real_acc'), '{:.1%}')}).")
        if "identity_ratio" in m:
            lines.append(f"Identity of the {m['identity_n_pairs']} off/on pairs (same z): the distance between the "
                         "two faces of a pair over the distance to an unrelated generated face (0: only the "
                         f"attribute changed; 1: no closer than a stranger) is {m['identity_ratio']:.3f} in the "
                         f"features of {m['identity_feature_space']} and {m['identity_ratio_pixels']:.3f} in "
                         "pixels.")
        if m.get("tag_groups"):
            lines += ["", f"**{g}**: how often each requested tag is recognised in the generated faces (classifiers "
                      "trained in the pipeline on the real faces), and the faces detected among the faces that "
                      "requested it:", "",
                      "| tag group (classifier on real test faces) | requested | recognised | faces detected |",
                      "|---|---|---|---|"]
            by_tag = m.get("face_rate_by_tag") or {}
            for group, v in m["tag_groups"].items():
                lines.append(f"| **{group}** ({_f(v.get('classifier_real_acc'), '{:.1%}')}) | all | "
                             f"**{_f(v.get('accuracy'), '{:.1%}')}** | |")
                for i, value in enumerate(v.get("values") or []):
                    lines.append(f"| | {value} | {_f((v.get('per_class') or {}).get(str(i)), '{:.1%}')} | "
                                 f"{_f((by_tag.get(group) or {}).get(value), '{:.1%}')} |")
        if lines and lines[-1] != "":
            lines.append("")
    return lines


def _elsewhere(section: str, what: str, params: dict) -> list[str]:
    """The methods of ``section`` the real profile runs and this run does not, each with the -S that adds it."""
    missing = methods_elsewhere(params)[section]
    if not missing:
        return []
    lines = [f"{what} not in this run (see the real profile, `configs/real.yaml` and `real/report/index.md`); "
             "one knob adds one here, with the real profile's recipe:", ""]
    lines += [f"- **{m}**: `{cmd}`" for m, cmd in missing.items()]
    if section == "cond_gens":
        lines.append("- attr_acgan and tag_cdcgan read CelebA's attributes (`data.face_attrs`); on the embedded faces "
                     "set `attribute` / `tag_groups` to the embedded ones (Mirrored, Bright).")
    return lines + [""]


def _cost_section(params: dict, root: Path, out_dir: Path) -> list[str]:
    """FID and face rate of every face generator against its training stage's wall time (walls/), one figure."""
    walls = stage_walls(root / "walls")
    pts = {}
    for g in params["face_gans"]:
        m = _load(root / f"metrics/gan/{g}/eval.json") or {}
        pts[g] = {"wall_s": (walls.get(f"train_gan@{g}") or {}).get("wall_s"), "fid": m.get("fid"),
                  "face_rate": m.get("face_rate")}
    for g in params.get("cond_gens") or {}:
        m = _load(root / f"metrics/cond/{g}.json") or {}
        pts[g] = {"wall_s": (walls.get(f"train_cond@{g}") or {}).get("wall_s"), "fid": m.get("fid"),
                  "face_rate": m.get("face_rate")}
    machines = sorted({w.get("machine", "?") for k, w in walls.items() if k.split("@")[-1] in pts})
    if not cost_figure(pts, out_dir / "face_cost.png"):
        return []
    return ["Quality at equal cost: each face generator's FID and face rate against the wall time of its training "
            f"stage (walls/, {'; '.join(machines)}; threads as recorded there). One point per method (its final "
            "model): the trainings keep no intermediate snapshots to draw a curve from.", "",
            "![face generators: quality vs training wall time](face_cost.png)", ""]


def _conditional_section(params: dict, root: Path, out_dir: Path, rel) -> list[str]:
    """Conditional generators: classifier accuracy of generated digits / attributes, FID/KID, grids."""
    gens = list(params.get("cond_gens") or {})
    if not gens:
        return []
    clf = _load(root / "metrics/classifier.json") or {}
    lines = ["## Conditional generation", "",
             f"Digit methods are scored by the pipeline's classifier on real `{clf.get('domain', '?')}` digits "
             f"(its real test accuracy, the ceiling: {_f(clf.get('test_acc'), '{:.1%}')}); course protocol: "
             f"{params['cond_sample']['n_per_class']} images per digit named `{{digit}}_{{nnn}}.png`. "
             "Face methods: FID/IS/KID against real faces, face-detection rate, and (attr_acgan) the accuracy of an "
             "attribute classifier trained on real faces.", "",
             "Digit FID: the Fréchet distance in the digit classifier's penultimate feature space (it knows digit "
             "shape, unlike the offline random-CNN extractor); compare it with its real-vs-real floor.", "",
             "| method | accuracy ↑ | digit FID ↓ | FID ↓ | IS ↑ | KID ↓ | faces detected | extractor | reference |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in gens:
        m = _load(root / f"metrics/cond/{g}.json") or {}
        acc = m.get("accuracy", m.get("attr_accuracy"))
        what = f" ({m['attribute']})" if "attribute" in m else ""
        lines.append(f"| {g} | {_f(acc, '{:.1%}')}{what} | {_f(m.get('digit_fid'), '{:.2f}')} | "
                     f"{_f(m.get('fid'), '{:.2f}')} | {_f(m.get('is_mean'))} | "
                     f"{_f(m.get('kid_mean'), '{:.4f}')} | {_f(m.get('face_rate'), '{:.1%}')} | "
                     f"{m.get('extractor', '–')} | {COURSE_COND.get(m.get('method', g), '–')} |")
    floors_done = set()
    for g in gens:  # the real-vs-real floor of each kind of data (digits of the domain, faces), once
        m = _load(root / f"metrics/cond/{g}.json") or {}
        kind = f"{m['domain']} digits" if "domain" in m else "faces"
        if "fid_real_floor" in m and kind not in floors_done:
            floors_done.add(kind)
            acc = clf.get("test_acc") if "domain" in m else m.get("attr_classifier_real_acc")
            lines.append(f"| *real vs real ({m['n_real_floor']} held-out {kind})* | {_f(acc, '{:.1%}')} | "
                         f"{_f(m.get('digit_fid_real_floor'), '{:.2f}')} | "
                         f"{_f(m['fid_real_floor'], '{:.2f}')} | – | {_f(m['kid_real_floor'], '{:.4f}')} | – | "
                         f"{m.get('extractor', '–')} | – |")
    lines.append("")
    lines += _face_condition_lines(gens, root)
    for g in gens:
        for name, what in (("grid.png", "samples (one row per class / tag combination; attr_acgan: off / on)"),
                           ("reverse.png", "reverse process of the first \"0\"")):
            p = Path(f"samples/cond/{g}/{name}")
            if (root / p).exists():
                lines += [f"**{g}** — {what}", "", f"![{g} {name}]({rel(p)})", ""]
    curves = {g: root / f"metrics/cond/{g}/losses.csv" for g in gens}
    if loss_figure(curves, ("loss_d", "loss_g", "loss"), out_dir / "cond_losses.png", "conditional-generator losses"):
        lines += ["Loss curves:", "", "![cond losses](cond_losses.png)", ""]
    acc = {g: curve_table(root / f"metrics/cond/curves/{g}.csv") for g in gens}
    if accuracy_curve_figure(acc, out_dir / "cond_curves.png", metric="accuracy"):
        lines += ["Generated-digit accuracy during training against training wall time (`cond.curve_every`: "
                  "`cond.curve_per_class` digits per class from fixed noise, the method's default sampler, scored "
                  "by the same classifier; the table above scores the final samples).",
                  "", "![digit-generator accuracy curves](cond_curves.png)", ""]
    return lines
