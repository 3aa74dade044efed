"""What a family needs beyond its settings, provided before its model is built: a family asks for it through
the contract (`with_resources`, models/base.py) and resolves its own needs from what is here; nothing here
knows which family asked.

`Resources` offers the run's data as loaded (not binarized, with labels), a folder for what a family trains
once per dataset and keeps (`cache`), a `log`, and the project's own frozen networks (`feature_network`).
"""

from functools import cached_property

from utils.analysis.features import cache_root, feature_network
from utils.data.binarize import load_raw


class Resources:
    """What a new run of these training settings can give a family."""

    def __init__(self, settings, log=print):
        self.settings = settings
        self.log = log

    @cached_property
    def data(self):
        """The dataset as it is (not binarized, no validation split), with its labels where it has them."""
        return load_raw(self.settings)

    @property
    def cache(self):
        """A folder for what a family trains once per dataset and keeps ($VAE_FEATURE_NETS, else
        run/feature_nets); made when first asked for."""
        folder = cache_root()
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def feature_network(self):
        """(weights file, number of classes) of the data's classifier, trained and cached the first time
        (utils/analysis/features.py)."""
        network = feature_network(self.data, self.settings.limit, self.log)
        return str(network.weights_path.resolve()), network.info["n_classes"]
