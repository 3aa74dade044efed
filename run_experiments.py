"""Train every variant of a suite with seeds 0..N-1, then compare them: summary.csv, summary.md,
losses.png and total_loss.png in the suite folder.

    python run_experiments.py --suite activations                 # the study: MNIST, 200 epochs, 5 seeds
    python run_experiments.py --suite all --seeds 2 --epochs 1 --limit 600 --dataset fashion_mnist --jobs 2
    python run_experiments.py --suite all --backend ray --ray-address HEAD:6379 --gpus-per-run 0.25

Run folders live in a pool shared by every suite on the same data, so a run another suite finished is
not trained again. Running the same command again skips finished runs and resumes unfinished ones; a
larger --epochs extends finished runs. Runs made with other data or more epochs are refused (see
utils/experiments/suite.py). Every flag is a field of `SuiteRequest` or one of the training settings it
passes on to every run (`PASSED_ON`). Exit status 0 when every run
finished, 1 otherwise (the summary still covers the finished ones).
"""

import sys

from utils import startup

startup.start()  # before Keras loads: the process settings, a quiet start

from models.registry import load_family_modules  # noqa: E402
from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.experiments.runner import run_suite  # noqa: E402
from utils.experiments.suite import PASSED_ON, SUITE_DEFAULTS, SuiteRequest  # noqa: E402
from utils.runs.settings import TrainSettings  # noqa: E402


def build_parser():
    """The command line: one flag per field of `SuiteRequest`."""
    try:
        load_family_modules()  # families kept outside the project may add presets and suites
    except ValueError as e:
        cli.fail(str(e))
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.request_flags = cli.add_setting_flags(p, [SuiteRequest])
    p.train_flags = cli.add_setting_flags(p.add_argument_group("every run's training (the rest is each preset's)"),
                                          [TrainSettings], only=PASSED_ON, defaults=SUITE_DEFAULTS)
    return p


def main(argv=None):
    """Parse the flags and run the suite; exit 0 if every run finished, 1 if not or on bad input."""
    p = build_parser()
    args = p.parse_args(argv)
    try:
        request = SuiteRequest(**cli.given(args, p.request_flags), training=cli.given(args, p.train_flags))
        result = run_suite(request, log=lambda line: print(line, flush=True))
    except UserError as e:
        cli.fail(str(e))
    except KeyboardInterrupt:
        cli.fail("interrupted; run the same command again to resume the unfinished runs", code=130)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
