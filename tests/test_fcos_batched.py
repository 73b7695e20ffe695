"""The batched FCOS targets give torchvision's losses and gradients, bit for bit."""

import pytest
import torch

from pipeline.config import load_params
from pipeline.fcos_batched import BatchedFCOS, as_torchvision
from pipeline.model import build_model


def random_batch(seed: int, sizes: list[int], side: int = 128):
    """Images of `side` px with boxes of 3 % to 100 % of the side: at 512 px all three FPN levels
    (strides 16, 32, 64; sizes up to 128, 256 and beyond) get boxes to answer for."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, side, side, generator=g) for _ in sizes]
    targets = []
    for n in sizes:
        extent = side * (0.03 + torch.rand(n, 2, generator=g) * 0.97)
        corner = torch.rand(n, 2, generator=g) * (side - extent)
        boxes = torch.cat([corner, corner + extent], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 4, (n,), generator=g)})
    return images, targets


def losses_and_gradients(model, images, targets):
    model.zero_grad(set_to_none=True)
    losses = model(images, targets)
    sum(losses.values()).backward()
    return losses, [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("sizes", "side"), [([1, 3, 0, 7], 128), ([2, 2], 128), ([0, 0, 5], 128), ([12], 128), ([0, 0], 128), ([4, 0, 9], 512)]
)
def test_losses_and_gradients_are_torchvisions(sizes, side):
    torch.manual_seed(0)
    cfg = load_params().model.model_copy(update={"min_size": side, "max_size": side})
    batched = build_model(cfg, 3).train()
    assert isinstance(batched, BatchedFCOS)
    reference = as_torchvision(batched)
    images, targets = random_batch(len(sizes), sizes, side)
    # The first backward pass of a process at a new batch shape sums some gradients in another order
    # than every later one (seen with torchvision's classes alone): a throw-away pass keeps it out.
    losses_and_gradients(as_torchvision(batched), images, targets)
    ours, our_grads = losses_and_gradients(batched, images, targets)
    theirs, their_grads = losses_and_gradients(reference, images, targets)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    for (name, _), p, q in zip(batched.named_parameters(), our_grads, their_grads, strict=True):
        assert (p is None) == (q is None), name
        if p is not None:
            assert torch.equal(p, q), name


def test_every_level_answers_for_boxes_at_512_px():
    """The size ranges of the three levels are exercised (the comparison above could not see a wrong bound
    on a level that matches nothing)."""
    torch.manual_seed(0)
    cfg = load_params().model.model_copy(update={"min_size": 512, "max_size": 512})
    model = build_model(cfg, 3).train()
    seen = {}
    original = model.head.compute_loss

    def spy(padded, head_outputs, anchors, matched_idxs):
        seen["matched"] = matched_idxs
        return original(padded, head_outputs, anchors, matched_idxs)

    model.head.compute_loss = spy
    model(*random_batch(3, [4, 0, 9], 512))
    levels = [32 * 32, 16 * 16, 8 * 8]  # anchors per level at strides 16, 32, 64
    matched = seen["matched"] >= 0
    per_level = [int(part.sum()) for part in matched.split(levels, dim=1)]
    assert all(count > 0 for count in per_level), per_level


def test_boxes_that_overlap_go_to_the_smallest_as_in_torchvision():
    torch.manual_seed(1)
    cfg = load_params().model.model_copy(update={"min_size": 128, "max_size": 128})
    batched = build_model(cfg, 3).train()
    reference = as_torchvision(batched)
    images = [torch.rand(3, 128, 128) for _ in range(2)]
    nested = torch.tensor([[0.0, 0, 128, 128], [20, 20, 110, 110], [40, 40, 90, 90]])
    targets = [{"boxes": nested, "labels": torch.tensor([1, 2, 3])}, {"boxes": nested[:1], "labels": torch.tensor([2])}]
    ours, theirs = batched(images, targets), reference(images, targets)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ours["classification"] > 0
