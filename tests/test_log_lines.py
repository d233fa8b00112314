"""Training and evaluation log lines number epochs the same way: 1-based, over the total."""

from pipeline.train.train import TrainState, epoch_label


def test_epoch_label_is_one_based_and_matches_the_evaluation():
    # after step 5 of 20 in the first epoch: 0 epochs finished, batch 5
    assert epoch_label(TrainState(epoch=0, batch=5), 2) == "1/2"
    # the evaluation at the end of the first epoch: 1 finished, batch reset
    assert epoch_label(TrainState(epoch=1, batch=0), 2) == "1/2"
    # first steps of the second epoch
    assert epoch_label(TrainState(epoch=1, batch=3), 2) == "2/2"
    assert epoch_label(TrainState(epoch=2, batch=0), 2) == "2/2"
    assert epoch_label(TrainState(epoch=0, batch=0), 0) == "1"
