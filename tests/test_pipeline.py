"""End to end through real DVC and MLflow on the shrunk real config (marked slow: ~2-3 min on 2 cores)."""
import json
import re
import socket
import sqlite3
import subprocess
import time

import pandas as pd
import pytest
import torch

from conftest import VENV_BIN, make_project, run

pytestmark = pytest.mark.slow

# The default runs Methods A and B (the other five face GANs run in the real profile, issue 34); this end-to-end run
# keeps Method B (the seeds' tricks: noisy labels, h-flip, EMA of G -- the most code of the DCGAN family). Every
# face-GAN config is smoke-trained in test_gan_lib.py and through its stages in test_method_stages.py, and
# test_default_pipeline_has_a_branch_for_every_method checks the default's DVC graph; each extra face GAN here costs
# ~1 min of CI (three stages in the repro, three more in the `-S lr_d` experiment).
FACE = ("dcgan_tricks",)
FACE_STAGES = {f"{s}@{g}" for s in ("train_gan", "sample_gan", "evaluate_gan") for g in FACE}
# the default's two digit methods; attr_acgan and tag_cdcgan (real profile: CelebA attributes) run their stages'
# code in tests/test_conditional_pipeline.py
COND = ("acgan", "ddpm")


def cond_stages(methods) -> set[str]:
    return {"train_classifier"} | {f"{s}@{g}" for s in ("train_cond", "sample_cond", "evaluate_cond") for g in methods}


COND_STAGES = cond_stages(COND)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from conftest import real_params, shrink

    root = tmp_path_factory.mktemp("pipeline")
    params = shrink(real_params())
    params["face_gans"] = {g: params["face_gans"][g] for g in FACE}
    params["da"]["settings"] = ["source_only", "dann", "target_only"]  # DSN, mean teacher: tests/test_da_lib.py
    params["cond_gens"] = {g: params["cond_gens"][g] for g in COND}
    proj = make_project(root / "proj", params)
    run(["dvc", "remote", "add", "-d", "local", str(root / "remote")], proj)
    out = run(["dvc", "repro"], proj)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "repro"], proj)
    return {"root": root, "proj": proj, "repro_out": out.stdout}


def test_repro_writes_metrics_samples_plots_and_report(project):
    proj = project["proj"]
    stages = ran_stages(project["repro_out"])
    assert {"prepare", "summary", "report", "tsne@mnistm-usps"} | FACE_STAGES <= stages
    assert {f"train_da@mnistm-usps-{s}" for s in ("source_only", "dann", "target_only")} <= stages
    assert COND_STAGES <= stages
    report = (proj / "report/index.md").read_text()
    assert len(list((proj / "samples/gan/dcgan_tricks/images").glob("*.png"))) == 40
    assert (proj / "samples/gan/dcgan_tricks/grid.png").stat().st_size > 1000
    for g in FACE:  # every face GAN trained, sampled and evaluated through dvc, and is in the report
        m = json.loads((proj / f"metrics/gan/{g}/eval.json").read_text())
        assert m["fid"] > 0 and m["is_mean"] >= 1.0 and m["extractor"] and 0.0 <= m["face_rate"] <= 1.0
        # the real-vs-real floor: as many held-out real faces against the same reference, same extractor
        assert m["n_real_floor"] == 40 and 0.0 <= m["fid_real_floor"] < m["fid"]
        assert len(list((proj / f"samples/gan/{g}/images").glob("*.png"))) == 40
        assert f"| {g} |" in report
    cfg = torch.load(proj / "models/gan/dcgan_tricks/generator.pt", weights_only=True)["cfg"]
    assert cfg["ema_decay"] == 0.999 and cfg["noisy_real"] == [0.7, 1.2] and cfg["steps"] == 4
    da = json.loads((proj / "metrics/da/mnistm-usps.json").read_text())
    for s in ("source_only", "dann", "target_only"):
        assert 0.0 <= da[s]["target_acc"] <= 1.0 and da[s]["n_seeds"] == 1 and da[s]["setting"] == s
        assert 0.0 <= da[s]["per_seed"]["0"]["target_acc_adabn"] == da[s]["target_acc_adabn"] <= 1.0
    assert "| mnistm-usps + AdaBN |" in report
    # the numerics each family trained in, resolved (da.compute / cond_gens.<name>.compute: auto over fp32)
    from genda.runtime.precision import bf16_pays

    auto = "bf16" if bf16_pays(torch.device("cpu")) else "fp32"
    assert {da[s]["train_compute"]["precision"] for s in ("source_only", "dann", "target_only")} == {auto}
    assert (proj / "plots/tsne/mnistm-usps/dann.png").exists()
    # the training curves (da.eval_every; the last step is always scored) -> CSV and the report's figure
    steps = torch.load(proj / "models/da/mnistm-usps/dann/seed0.pt", weights_only=True)["curve"][-1]["step"]
    curve = pd.read_csv(proj / "metrics/da/curves/mnistm-usps.csv")
    last = curve[curve["step"] == steps].set_index("setting")
    assert set(last.index) == {"source_only", "dann", "target_only"}
    for s in last.index:  # the curve's last point is the evaluated model
        assert last.loc[s, "target_acc"] == pytest.approx(da[s]["target_acc"], abs=1e-6)
    # its wall times: in each training's timing file (the report joins them), one per curve point
    from genda.train.timing import read_timing

    t = read_timing(proj / "metrics/da/mnistm-usps/dann/timing.json", "seed0.pt")
    assert sorted(t["wall_s"]) == sorted(curve[curve["setting"] == "dann"]["step"]) and "wall_s" not in curve
    assert "![DA accuracy curves](da_curves.png)" in report and (proj / "report/da_curves.png").exists()
    assert "![digit-generator accuracy curves](cond_curves.png)" in report and (proj / "report/cond_curves.png").exists()
    assert "| *real vs real (40 held-out faces)* |" in report
    assert "| dcgan_tricks |" in report and "| mnistm-usps |" in report and "88.3" in report
    assert "../samples/gan/dcgan_tricks/grid.png" in report
    # issue 34: quality against the training stage's wall time (walls/), and the real profile's face methods this
    # run leaves out, each with the -S that adds it
    assert "![face generators: quality vs training wall time](face_cost.png)" in report
    assert (proj / "report/face_cost.png").stat().st_size > 1000
    assert ("- **lsgan**: `dvc exp run -S "
            "'+face_gans.lsgan={loss:lsgan,d_norm:none,ema_decay:0.999,lr_schedule:linear}'`") in report
    assert "- **dcgan**: `dvc exp run -S '+face_gans.dcgan={}'`" in report and "- **dcgan_tricks**:" not in report
    assert "- **tag_cdcgan**: `dvc exp run -S '+cond_gens.tag_cdcgan={method:tag_cdcgan," in report
    for g in COND:  # every conditional method is in the report's table with its metrics
        c = json.loads((proj / f"metrics/cond/{g}.json").read_text())
        assert c["method"] == g and c["fid"] > 0
        assert f"| {g} |" in report
    acgan = json.loads((proj / "metrics/cond/acgan.json").read_text())
    assert 0.0 <= acgan["accuracy"] <= 1.0
    assert acgan["train_compute"] == {"precision": auto, "channels_last": True}
    assert json.loads((proj / "metrics/cond/ddpm.json").read_text())["train_compute"]["precision"] == "fp32"
    assert acgan["digit_fid"] > acgan["digit_fid_real_floor"] > 0  # classifier-feature FID beside its floor
    assert acgan["n_real_floor"] == 30 and 0.0 <= acgan["fid_real_floor"] < acgan["fid"]
    assert report.count("| *real vs real (30 held-out mnistm digits)* |") == 1
    assert len(list((proj / "samples/cond/ddpm/images").glob("*.png"))) == 30
    assert "../samples/cond/ddpm/reverse.png" in report


def test_noop_repro_runs_nothing(project):
    out = run(["dvc", "repro"], project["proj"]).stdout
    assert ran_stages(out) == set()


def test_push_then_fresh_clone_pull_is_clean(project):
    proj, root = project["proj"], project["root"]
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "remote", "--allow-empty"], proj)
    run(["dvc", "push"], proj)
    clone = root / "clone"
    run(["git", "clone", "-q", str(proj), str(clone)], root)
    run(["dvc", "pull"], clone)
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, status
    assert ran_stages(run(["dvc", "repro"], clone).stdout) == set()
    assert len(list((clone / "samples/gan/dcgan_tricks/images").glob("*.png"))) == 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_remote_push_then_fresh_clone_pull_runs_nothing(project):
    """dvc-s3 against a real S3-compatible server (moto's server mode) on localhost."""
    pytest.importorskip("dvc_s3")
    pytest.importorskip("moto")
    import boto3

    proj, root = project["proj"], project["root"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
             "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "moto_server did not start"
                time.sleep(0.2)
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="genda")
        run(["dvc", "remote", "add", "s3", "s3://genda/dvc-cache"], proj)
        run(["dvc", "remote", "modify", "s3", "endpointurl", url], proj)
        run(["git", "add", "-A"], proj)
        run(["git", "commit", "-qm", "s3 remote"], proj)
        run(["dvc", "push", "-r", "s3"], proj, env=creds)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="genda").get("Contents", [])]
        assert len(keys) > 10 and all(k.startswith("dvc-cache/files/md5/") for k in keys)
        clone = root / "clone_s3"
        run(["git", "clone", "-q", str(proj), str(clone)], root)
        run(["dvc", "pull", "-r", "s3"], clone, env=creds)
        status = run(["dvc", "status"], clone).stdout
        assert "up to date" in status, status
        assert ran_stages(run(["dvc", "repro"], clone).stdout) == set()
        assert len(list((clone / "samples/gan/dcgan_tricks/images").glob("*.png"))) == 40
        assert (clone / "models/da/mnistm-usps/dann/seed0.pt").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_exp_run_lr_d_reruns_only_the_face_gan(project):
    proj = project["proj"]
    before = json.loads((proj / "metrics/gan/dcgan_tricks/eval.json").read_text())
    out = run("dvc exp run -S lr_d=5e-5", proj).stdout
    stages = ran_stages(out)
    assert stages == FACE_STAGES | {"summary", "report"}, out
    assert "lr_d: 5.0e-05" in (proj / "params.yaml").read_text() or "lr_d: 5e-05" in (proj / "params.yaml").read_text()
    after = json.loads((proj / "metrics/gan/dcgan_tricks/eval.json").read_text())
    assert after["fid"] != before["fid"]
    project["exp_out"] = out


def test_metrics_diff_between_commits(project):
    proj = project["proj"]
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "lr_d=5e-5"], proj)
    diff = json.loads(run(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json"], proj).stdout)
    fid = diff["summary/metrics/gan/dcgan_tricks.json"]["fid"]
    assert fid["diff"] != 0 and fid["old"] != fid["new"]
    assert not any(k.startswith("summary/metrics/da") for k in diff)


def test_mlflow_runs_have_params_losses_and_tags(project):
    proj = project["proj"]
    con = sqlite3.connect(proj / "mlflow.db")
    runs = dict(con.execute("select run_uuid, name from runs").fetchall())
    names = list(runs.values())
    assert names.count("train_gan@dcgan_tricks") == 2 and "evaluate_da@mnistm-usps" in names
    tags = {}
    for run_id, key, value in con.execute("select run_uuid, key, value from tags"):
        tags.setdefault(run_id, {})[key] = value
    exp_runs = [r for r, n in runs.items() if n == "train_gan@dcgan_tricks" and tags[r].get("dvc_exp_name")]
    assert len(exp_runs) == 1, "the dvc exp run must be tagged with DVC_EXP_NAME"
    for r, n in runs.items():
        assert re.fullmatch(r"[0-9a-f]{40}", tags[r]["git_commit"]) and tags[r]["dvc_stage"] == n
    assert {s for (s,) in con.execute("select status from runs")} == {"FINISHED"}
    steps = con.execute("select count(*) from metrics where run_uuid=? and key='loss_d'", (exp_runs[0],)).fetchone()[0]
    assert steps == 4  # one per step with log_every=1
    lr = con.execute("select value from params where run_uuid=? and key='lr_d'", (exp_runs[0],)).fetchone()[0]
    assert float(lr) == 5e-5


def test_evaluation_scores_only_the_samples_of_their_manifest(project):
    """evaluate_gan depends on the samples' manifest, not on the folder of PNGs (DVC hashes the folder once, as
    sample_gan's output), and checks every PNG against it: a PNG changed after sampling stops the stage with an
    error naming it, before anything is scored."""
    proj = project["proj"]
    images = proj / f"samples/gan/{FACE[0]}/images"
    listed = json.loads((images.parent / "manifest.json").read_text())["files"]
    assert sorted(listed) == sorted(p.name for p in images.iterdir()) and len(listed) > 0
    png = images / sorted(listed)[0]
    original = png.read_bytes()
    png.unlink()  # a new file: never write through a link into DVC's cache
    png.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        r = run(["python", "stages/evaluate_gan.py", FACE[0]], proj, check=False, env={"GENDA_WARM": "0"})
        assert r.returncode != 0 and f"{png.name}: its content differs from" in r.stdout + r.stderr
    finally:
        png.unlink()
        png.write_bytes(original)
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == set()


def test_forced_repro_retrains_from_scratch(project):
    """`dvc repro -f -s STAGE` retrains (the persisted final checkpoint is not resumed); same params and seed on
    one machine give the same model file, byte for byte: its wall times live in the stage's timing file
    (genda.train.timing), the only output that changed, so the next `dvc repro` reruns the report alone --
    no evaluation, t-SNE or retraining -- and the accuracies stay."""
    proj = project["proj"]
    model = proj / "models/da/mnistm-usps/dann/seed0.pt"
    timing = proj / "metrics/da/mnistm-usps/dann/timing.json"
    before, before_bytes, timing_before = torch.load(model, weights_only=True), model.read_bytes(), timing.read_text()
    acc_before = json.loads((proj / "metrics/da/mnistm-usps.json").read_text())["dann"]["target_acc"]
    out = run(["dvc", "repro", "-f", "-s", "train_da@mnistm-usps-dann"], proj).stdout
    assert ran_stages(out) == {"train_da@mnistm-usps-dann"}
    assert "retraining from scratch" in out and "resumed" not in out
    after = torch.load(model, weights_only=True)
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    assert [r["target_acc"] for r in before["curve"]] == [r["target_acc"] for r in after["curve"]]
    assert model.read_bytes() == before_bytes and timing.read_text() != timing_before
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == {"summary", "report"}  # timing files only
    assert json.loads((proj / "metrics/da/mnistm-usps.json").read_text())["dann"]["target_acc"] == acc_before
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == set()


def test_queued_experiments_run_two_at_a_time(project):
    """`dvc exp run --queue` x2 then `dvc queue start -j 2`: both run at once and succeed, and each one's MLflow run lands,
    FINISHED, in the project's own mlflow.db (DVC runs queued experiments in temporary copies)."""
    proj = project["proj"]
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "before queue", "--allow-empty"], proj)
    names = [f"tsne{n}" for n in (30, 34)]  # two: the -j 2 concurrency is what is tested (a third cost ~1 min of CI)
    for name in names:
        # target the one stage the knob changes (its MLflow run is what this test checks), so that each
        # experiment does not also redo t-SNE and the report
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"da.tsne_points={name[4:]}",
             "evaluate_da@mnistm-usps"], proj)
    run(["dvc", "queue", "start", "-j", "2"], proj)
    deadline = time.time() + 900
    while True:
        status = run(["dvc", "queue", "status"], proj).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.time() < deadline, status
        time.sleep(10)  # each `dvc queue status` costs a CPU-second that the experiments need
    for name in names:
        assert re.search(rf"{name}\s.*Success", status), status
        logs = run(["dvc", "queue", "logs", name], proj).stdout
        assert "database is locked" not in logs and "MLflow" not in logs, logs[-3000:]
    con = sqlite3.connect(proj / "mlflow.db")
    rows = con.execute("select r.status, t.value from runs r join tags t on r.run_uuid = t.run_uuid "
                       "where t.key = 'dvc_exp_name' and r.name = 'evaluate_da@mnistm-usps'").fetchall()
    assert sorted(v for _, v in rows if v in names) == names
    assert {st for st, v in rows if v in names} == {"FINISHED"}
    shown = json.loads(run(["dvc", "exp", "show", "--json"], proj).stdout)
    assert set(names) <= set(re.findall(r"tsne3[04]", json.dumps(shown)))


def test_default_pipeline_has_a_branch_for_every_method(tmp_path):
    """The unshrunk default params.yaml: DVC's graph has train/sample/evaluate for Methods A and B and the two digit
    generators (the other face methods: the real profile, issue 34), a train stage per (pair, setting) for two of the seeds' four pairs (the other two:
    `-S da.pairs=...`) x five settings, an evaluate and a t-SNE stage per pair, the FID reference features of
    faces and of digits, the style-transfer chain, and one report (the graph only: nothing runs)."""
    from conftest import real_params

    params = real_params()
    proj = make_project(tmp_path / "proj", params)
    stages = set(run(["dvc", "stage", "list", "--name-only"], proj).stdout.split())
    gans = ("dcgan", "dcgan_tricks")  # the other five run in the real profile (issue 34; report: the -S adding one)
    pairs = ("svhn-mnistm", "mnistm-usps")
    settings = ("source_only", "dann", "dsn", "mean_teacher", "target_only")
    assert tuple(params["face_gans"]) == gans and tuple(params["da"]["pairs"]) == pairs
    assert tuple(params["da"]["settings"]) == settings
    expected = ({"prepare", "train_classifier", "summary", "report", "fid_reference@faces", "fid_reference@digits",
                 "train_style", "stylize", "evaluate_style"}
                | {f"{s}@{g}" for s in ("train_gan", "sample_gan", "evaluate_gan") for g in gans}
                | cond_stages(COND)
                | {f"train_da@{p}-{s}" for p in pairs for s in settings}
                | {f"{s}@{p}" for s in ("evaluate_da", "tsne") for p in pairs})
    assert stages == expected
