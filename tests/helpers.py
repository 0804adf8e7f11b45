"""Small helpers shared by the tests."""

from skrank import CLIPRanker

INSTRUCTION = "Sort the images by brightness."


def tiny_ranker(instruction=INSTRUCTION, **kw):
    """A quick skrank-tiny ranker on the CPU; keyword arguments override the defaults."""
    params = dict(
        backbone="skrank-tiny", lr=1e-3, max_epochs=2, batch_size=16, device="cpu", random_state=0
    )
    params.update(kw)
    return CLIPRanker(instruction, **params)
