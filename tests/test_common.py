"""scikit-learn's own estimator checks on ConvNetClassifier and ConvNetRegressor."""

import pytest
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from skconv import ConvNetClassifier, ConvNetRegressor


def _expected_failed_checks(estimator):
    # one check, run on dense and on sparse X (both estimators accept sparse X)
    reason = (
        "mini-batch training: a sample weighted by 2 is not the same sample twice: the "
        "shuffled batches differ (on the check's 15 rows, one batch summed in another "
        "order, so float32 rounding), batch norm's statistics are unweighted and dropout "
        "draws a mask per row; scikit-learn declares the same for SGDClassifier"
    )
    failed = {
        "check_sample_weight_equivalence_on_dense_data": reason,
        "check_sample_weight_equivalence_on_sparse_data": reason,
    }
    if getattr(estimator, "loss", None) == "poisson":
        failed["check_regressor_multioutput"] = (
            "its y comes from make_regression, negative in places, without the "
            "positive_only tag every other check honours"
        )
    return failed


@parametrize_with_checks(
    [
        # small and fast: one tiny conv block, a small dense layer, enough epochs
        # for the checks' easy blobs problems
        ConvNetClassifier(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=60,
                          learning_rate_init=0.01, random_state=0),
        ConvNetRegressor(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=100,
                         learning_rate_init=0.01, random_state=0),
        # an exponential output, for y >= 0 only: the checks read that from the tags
        ConvNetRegressor(conv_layers=(4,), hidden_layer_sizes=(16,), loss="poisson",
                         max_iter=100, learning_rate_init=0.01, random_state=0),
        # a graph: a residual block with a projection shortcut, global average pooling
        ConvNetClassifier(conv_layers=(4, {"residual": [6, 6]}), global_pool="avg",
                          hidden_layer_sizes=(), max_iter=60, learning_rate_init=0.01,
                          random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# The same checks on the other paths through the network (average pooling, SGD, batch
# norm, dropout): three times the work of the fast estimator above, so `pytest -m slow`.
@pytest.mark.slow
@parametrize_with_checks(
    [
        ConvNetClassifier(conv_layers=({"filters": 3, "pool": "avg"},), hidden_layer_sizes=(),
                          activation="tanh", solver="sgd", learning_rate_init=0.05,
                          max_iter=60, random_state=0),
        # batch norm on the conv block and the dense layer, dropout after the dense layer
        ConvNetClassifier(conv_layers=(4,), hidden_layer_sizes=(16,), batch_norm=True,
                          dropout=0.2, max_iter=60, learning_rate_init=0.01, random_state=0),
        # batch norm on the first block only (a per-block override); dropout without it
        ConvNetClassifier(conv_layers=({"filters": 3, "batch_norm": True},
                                       {"filters": 3, "pool": None}),
                          hidden_layer_sizes=(16,), dropout=0.3, max_iter=60,
                          learning_rate_init=0.01, random_state=0),
        ConvNetRegressor(conv_layers=({"filters": 3, "pool": "avg"},), hidden_layer_sizes=(8,),
                         activation="tanh", solver="sgd", learning_rate_init=0.01,
                         batch_norm=True, max_iter=100, random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_compatible_estimator_variants(estimator, check):
    check(estimator)


@pytest.mark.parametrize("Estimator", [ConvNetClassifier, ConvNetRegressor])
def test_tags_say_x_may_be_3d_images_and_sparse_rows(Estimator):
    tags = get_tags(Estimator()).input_tags
    assert tags.three_d_array and tags.two_d_array and tags.sparse
