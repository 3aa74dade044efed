"""A suite of variants × seeds: what to run (`SuiteRequest`, every setting of a suite run), where its files
are (`SuiteFolders`), and which run folders exist, which to skip, resume, extend or start (`plan`). The
backends that train them are in local.py and ray_backend.py; report.py summarises the result.

    <pool>/                               shared by every suite on the same data (dataset and --limit)
        NNNN_<dataset>_<variant>/         one run folder per (variant, seed), made by train.py
        .locks/<variant>_seed<S>.lock     held while a runner trains that run
    <suite folder>/
        logs/<variant>_seed<S>.log        stdout and stderr of every attempt at that run
        summary.csv, summary.md, losses.png, total_loss.png
        runs/                             the earlier layout's run folders: still found and used

A backend is an object with `describe()`, `check_shared(folders)` and `run(jobs, request, folders,
on_done)`, used as a context manager; `run` calls `on_done(attempt)` as each job ends, and the runner
needs nothing else from it.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from models.settings import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, check_fields, setting
from utils.data.loaders import dataset_name
from utils.errors import UserError
from models.presets import preset_training
from utils.experiments.suites import SUITES
from utils.runs import health, layout
from utils.runs.settings import TrainSettings, epochs_for_steps, recorded_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SUITE_ROOT = Path("run") / "experiments"
RUNS = "runs"
LOGS = "logs"
REFERENCE_VARIANT = "base_lrelu"
BACKENDS = ("local", "ray")
VAL_FRACTION = TrainSettings.val_fraction  # suites validate on the default split of the training images


# The training settings (TrainSettings' fields, utils/runs/settings.py) a suite passes on to every run; the
# others are each preset's own (its batch size, learning rate, ...).
PASSED_ON = ("dataset", "epochs", "steps", "limit", "mixed_precision", "eval_samples")
SUITE_DEFAULTS = {"eval_samples": 100}  # a suite scores every run it trains; a run trained alone is not


@dataclass(frozen=True)
class SuiteRequest:
    """Every setting of a suite run: which variants and seeds, the training settings passed on to every run
    (`training`: the PASSED_ON fields given, `settings`: all of them), where the files go, and which backend
    trains them. Bad values raise `UserError` before anything is created."""

    suite: str = setting(dataclasses.MISSING, "which group of variants (utils/experiments/suites.py)",
                         choices=lambda: SUITES)
    seeds: int = setting(5, "train seeds 0..N-1 of every variant", check=POSITIVE_INT)
    training: dict = field(default_factory=dict, metadata={"help": "the PASSED_ON training settings given",
                                                           "flag": False})
    variants: tuple[str, ...] = setting((), "comma-separated subset of the suite's variants (default: all)")
    jobs: int = setting(1, "local backend: trainings at once, one GPU each where there are GPUs, several to a "
                           "GPU when more", check=POSITIVE_INT)
    out: str | None = setting(None, "suite folder (default run/experiments/<suite>_<dataset>[_limitN])")
    pool: str | None = setting(None, "folder of run folders shared by suites (default pool_<dataset>[_limitN] "
                                     "beside the suite folder)")
    backend: str = setting("local", "local: processes on this machine; ray: tasks on a Ray cluster",
                           choices=BACKENDS)
    ray_address: str | None = setting(None, "ray: the cluster (default $RAY_ADDRESS, else a local Ray started "
                                             "for the suite)")
    gpus_per_run: float | None = setting(None, "ray: GPUs per run, e.g. 0.25 for four trainings on a GPU "
                                               "(default: 1 if the cluster has GPUs, else none)", check=POSITIVE)
    cpus_per_run: float | None = setting(None, "ray: CPUs per run (default 1)", check=POSITIVE)
    root: str = setting(str(SUITE_ROOT), "where default suite folders go", flag=False)

    def __post_init__(self):
        try:
            check_fields(self)
        except ValueError as e:
            raise UserError(str(e)) from None
        own = [f"--{k.replace('_', '-')}" for k in self.training if k not in PASSED_ON]
        if own:
            raise UserError(f"{', '.join(own)}: each preset trains with its own; a suite passes on only "
                            f"{', '.join('--' + k.replace('_', '-') for k in PASSED_ON)}")
        self.settings  # noqa: B018 -- checks the training values now
        unknown = [v for v in self.variants if v not in SUITES[self.suite]]
        if unknown:
            raise UserError(f"{', '.join(unknown)} not in suite {self.suite!r}; "
                            f"its variants are {', '.join(SUITES[self.suite])}")
        # Suite order, whatever order the user gave, so tables and colours are stable.
        chosen = [v for v in SUITES[self.suite] if not self.variants or v in self.variants]
        object.__setattr__(self, "variants", tuple(chosen))
        ray_options = [f"--{name.replace('_', '-')}" for name in ("ray_address", "gpus_per_run", "cpus_per_run")
                       if getattr(self, name) is not None]
        if self.backend == "local" and ray_options:
            raise UserError(f"{ray_options[0]} is for --backend ray; drop it or add --backend ray")
        if self.backend == "ray" and self.jobs != 1:
            raise UserError("--jobs is for the local backend; with --backend ray, the cluster's CPUs and GPUs "
                            "divided by --cpus-per-run / --gpus-per-run decide how many train at once")

    @property
    def settings(self):
        """The `TrainSettings` of `training` over the suite's defaults; only the PASSED_ON fields are used."""
        try:
            return TrainSettings(**{**SUITE_DEFAULTS, **self.training})
        except ValueError as e:
            raise UserError(str(e)) from None

    @property
    def reference(self):
        """The variant the others are compared with: base_lrelu, or the first one when it is absent."""
        return REFERENCE_VARIANT if REFERENCE_VARIANT in self.variants else self.variants[0]

    def with_step_budget(self, n_images):
        """The request with `epochs` computed from its step budget on `n_images` training images (unchanged
        without one); a UserError where the variants train with different batch sizes."""
        if self.settings.steps is None:
            return self
        sizes = {preset_training(v).get("batch_size", TrainSettings.batch_size) for v in self.variants}
        if len(sizes) > 1:
            raise UserError(f"--steps needs one batch size, and these variants train with {sorted(sizes)}; "
                            "run them as separate suites (--variants)")
        return dataclasses.replace(self, training={**self.training, "epochs": epochs_for_steps(
            self.settings.steps, n_images, sizes.pop())})

    def keys(self):
        """Every (variant, seed) of the request, variant by variant."""
        return [(v, s) for v in self.variants for s in range(self.seeds)]

    def data_label(self):
        """`<dataset>[_limitN]_val[_mixed]`, the part of the default folder names that keeps other data (and
        mixed-precision runs) apart; `_val`: validated on a split of the training images, so the folders of
        runs made before the split (validated on the test images) are never mixed with these."""
        settings = self.settings
        return (dataset_name(settings.dataset) + (f"_limit{settings.limit}" if settings.limit else "") + "_val"
                + ("_mixed" if settings.mixed_precision else ""))

    def folders(self):
        """The `SuiteFolders` of the request: `out`, else `<root>/<suite>_<data label>` (other data or
        precision, another folder, so runs never mix); the pool `pool`, else `pool_<data label>` beside the
        suite folder, so that suites side by side share their runs."""
        suite_dir = Path(self.out) if self.out else Path(self.root) / f"{self.suite}_{self.data_label()}"
        return SuiteFolders(suite_dir, self.pool or Path(suite_dir).absolute().parent / f"pool_{self.data_label()}")


def validated_on(fraction):
    """What a run with `val_fraction` chose its best epoch on, in words."""
    return (f"a {fraction:g} share of the training images" if fraction
            else "the test images (made before the validation split)")


def plural(n, word):
    """`1 epoch`, `3 epochs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class SuiteFolders:
    """Where a suite's files are: its own folder (summary, figures, logs) and the pool of run folders it
    shares with other suites; absolute, since Ray tasks on other nodes use them too."""

    suite: Path
    pool: Path

    def __post_init__(self):
        object.__setattr__(self, "suite", Path(self.suite).absolute())
        object.__setattr__(self, "pool", Path(self.pool).absolute())

    @property
    def logs(self):
        return self.suite / LOGS

    @property
    def places(self):
        """Where runs are looked for: the pool, then `<suite>/runs` (the earlier layout, still used)."""
        return (self.pool, self.suite / RUNS)

    def runs(self):
        """{(variant, seed): (run_dir, params)} of every run found in `places`."""
        return find_runs(*self.places)


def check_writable(folder, flag="--out"):
    """A one-line error unless `folder` exists as a writable folder or could be made; creates nothing."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot use {folder} as a folder: {existing} is a file; pass another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {existing}; pass a writable {flag}")


@dataclass
class Job:
    """One (variant, seed) and what to do about it: skip, new, resume (unfinished), extend (more epochs) or
    damaged (nothing sound to continue from: reported, not trained)."""

    variant: str
    seed: int
    action: str
    run_dir: Path | None = None
    params: dict = field(default_factory=dict)
    damage: str = ""  # action "damaged": what is damaged (not trained; utils/runs/health.py)

    @property
    def name(self):
        return f"{self.variant}_seed{self.seed}"


def find_runs(*runs_dirs):
    """{(variant, seed): (run_dir, params)} from the params.json of every run folder in `runs_dirs`.

    If a pair has several folders (a copy, say), the finished one with the most epochs wins.
    """
    found = {}
    for run_dir in (d for folder in map(Path, runs_dirs) if folder.is_dir() for d in sorted(folder.glob("*/"))):
        if health.json_damage(run_dir / layout.PARAMS):
            continue  # killed before params.json was written, or damaged: `unmatched_runs` names the latter
        params = layout.read_params(run_dir)
        key = (params.get("variant"), params.get("training", {}).get("seed"))
        rank = (params.get("status") == "finished", params.get("training", {}).get("epochs", 0), run_dir.name)
        if key not in found or rank > found[key][2]:
            found[key] = (run_dir, params, rank)
    return {key: (run_dir, params) for key, (run_dir, params, _) in found.items()}


def unmatched_runs(*runs_dirs):
    """Run folders in `runs_dirs` whose params.json is damaged, so their (variant, seed) cannot be told."""
    return [(d, damage) for folder in map(Path, runs_dirs) if folder.is_dir() for d in sorted(folder.glob("*/"))
            if (d / layout.PARAMS).exists() and (damage := health.json_damage(d / layout.PARAMS))]


def health_action(action, run_dir):
    """The action for a run found in the pool after checking its files: "damaged" where nothing sound is left
    to do it from (reported, not trained); "resume" for a finished run whose exported models a resume
    remakes; else `action`."""
    found = health.check_run(run_dir)
    if found.state != "damaged" or action == "extend" and found.resume:
        return action, ""
    if found.exports_only:
        return ("resume" if action == "skip" else action), ""
    return "damaged", "; ".join(map(str, found.damage))


def plan(request, folders):
    """A `Job` for every (variant, seed) of the request; refuses runs made with other settings.

    Dataset, --limit, the validation split or --mixed-precision differing from the run's: refused (they belong in another pool).
    More epochs than the run was set to: the run is extended with `--resume DIR --epochs E`.
    Fewer: refused, since the summary would compare runs of unequal length.
    Damaged beyond what a resume repairs (utils/runs/health.py): "damaged", reported and not trained.
    """
    existing, settings = folders.runs(), request.settings
    jobs = []
    for variant, seed in request.keys():
        if (variant, seed) not in existing:
            jobs.append(Job(variant, seed, "new"))
            continue
        run_dir, params = existing[(variant, seed)]
        training = params["training"]
        if (training.get("dataset"), training.get("limit")) != (settings.dataset, settings.limit):
            raise UserError(
                f"{run_dir} was trained on {training.get('dataset')} with --limit {training.get('limit')}, "
                f"not {settings.dataset} with --limit {settings.limit}; use the same settings or another --pool")
        if recorded_settings(params).val_fraction != VAL_FRACTION:
            raise UserError(f"{run_dir} was validated on {validated_on(recorded_settings(params).val_fraction)}, this "
                            f"suite on {validated_on(VAL_FRACTION)}; runs of the two protocols are not compared: "
                            "pass another --pool")
        if bool(training.get("mixed_precision")) != settings.mixed_precision:
            raise UserError(f"{run_dir} was trained {'with' if training.get('mixed_precision') else 'without'} "
                            "--mixed-precision; use the same setting or another --pool")
        if training["epochs"] > settings.epochs:
            raise UserError(
                f"{run_dir} is set to {training['epochs']} epochs, more than --epochs {settings.epochs}; "
                f"pass --epochs {training['epochs']} (or more) or another --pool, so that runs of unequal "
                "length are not compared")
        if params.get("status") == "finished":
            action = "skip" if training["epochs"] == settings.epochs else "extend"
        else:
            action = "resume"
        action, damage = health_action(action, run_dir)
        jobs.append(Job(variant, seed, action, run_dir, params, damage))
    return jobs


def plan_locked(request, folders, locks):
    """`plan`, after locking every run it will train: planning again under the locks catches a run
    another suite started or extended in the meantime."""
    while True:
        todo = plan(request, folders)
        unlocked = [(j.variant, j.seed) for j in todo if j.action not in ("skip", "damaged") and (j.variant, j.seed) not in locks]
        if not unlocked:
            return todo
        locks.take(unlocked)
