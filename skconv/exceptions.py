"""Warnings and errors raised by skconv."""


class InconsistentVersionWarning(UserWarning):
    """Warn when a model is unpickled under a skconv version other than the one that saved it.

    Parameters
    ----------
    estimator_name : str
    current_version : str
        The skconv version doing the loading.
    original_version : str
        The skconv version that pickled the model.
    """

    def __init__(self, *, estimator_name, current_version, original_version):
        self.estimator_name = estimator_name
        self.current_version = current_version
        self.original_version = original_version

    def __str__(self):
        return (
            f"Trying to unpickle estimator {self.estimator_name} from skconv version "
            f"{self.original_version} when using version {self.current_version}. "
            "This might lead to breaking code or invalid results. Use at your own risk."
        )
