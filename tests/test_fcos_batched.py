"""The batched FCOS targets give torchvision's losses and gradients, bit for bit."""

import copy

import pytest
import torch
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead

from pipeline.config import load_params
from pipeline.fcos_batched import BatchedFCOS
from pipeline.model import build_model


def as_torchvision(model: BatchedFCOS) -> FCOS:
    """The same weights in torchvision's own classes."""
    reference = copy.deepcopy(model)
    reference.__class__ = FCOS
    reference.head.__class__ = FCOSHead
    return reference


def random_batch(seed: int, sizes: list[int]):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 128, 128, generator=g) for _ in sizes]
    targets = []
    for n in sizes:
        corner = torch.rand(n, 2, generator=g) * 90
        extent = 4 + torch.rand(n, 2, generator=g) * 60
        boxes = torch.cat([corner, (corner + extent).clamp(max=128)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 4, (n,), generator=g)})
    return images, targets


def losses_and_gradients(model, images, targets):
    model.zero_grad(set_to_none=True)
    losses = model(images, targets)
    sum(losses.values()).backward()
    return losses, [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("sizes", [[1, 3, 0, 7], [2, 2], [0, 0, 5], [12]])
def test_losses_and_gradients_are_torchvisions(sizes):
    torch.manual_seed(0)
    cfg = load_params().model.model_copy(update={"min_size": 128, "max_size": 128})
    batched = build_model(cfg, 3).train()
    assert isinstance(batched, BatchedFCOS)
    reference = as_torchvision(batched)
    images, targets = random_batch(len(sizes), sizes)
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
