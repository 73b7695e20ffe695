"""torchvision's FCOS with its training targets computed for the whole batch at once.

torchvision matches anchors to boxes image by image in Python (FCOS.compute_loss
and FCOSHead.compute_loss loop over the batch): a forward pass with the loss
for a batch of 32 at 320 px runs 11,501 tensor operations, 5,788 with the
batched targets here (`python -m bench.fcos_step_speed --count-ops`), and on
a GPU the training step waited on the CPU launching them (session 7: 10 s of
each 15 s epoch on an H100 were steps, the card mostly idle). Here the boxes
of a batch are padded to the largest count and every rule of torchvision's
matcher (centre sampling, point inside the box, the level's size range, the
smallest box wins) is applied to all images in one go, element by element
with the same arithmetic, so the matches and the losses are the same bit for
bit (tests/test_fcos_batched.py compares them with torchvision's). Inference
and export are torchvision's, untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss


def padded_targets(targets: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Boxes [B, M, 4], labels [B, M] and a validity mask [B, M], M the most boxes of any image (at least 1)."""
    most = max(1, max(len(t["boxes"]) for t in targets))
    device = targets[0]["boxes"].device
    boxes = torch.zeros((len(targets), most, 4), dtype=targets[0]["boxes"].dtype, device=device)
    labels = torch.zeros((len(targets), most), dtype=torch.int64, device=device)
    valid = torch.zeros((len(targets), most), dtype=torch.bool, device=device)
    for i, t in enumerate(targets):  # three copies per image, instead of forty operations
        n = len(t["boxes"])
        boxes[i, :n] = t["boxes"]
        labels[i, :n] = t["labels"]
        valid[i, :n] = True
    return boxes, labels, valid


class BatchedFCOSHead(FCOSHead):
    def compute_loss(self, padded, head_outputs, anchors, matched_idxs):  # type: ignore[override]
        """FCOSHead.compute_loss, given `padded_targets`, the anchors [B, A, 4] and the matches [B, A] (-1: background)."""
        if not isinstance(padded, tuple):
            raise TypeError("BatchedFCOSHead takes padded targets: pair it with BatchedFCOS")
        boxes, labels, _ = padded
        cls_logits = head_outputs["cls_logits"]  # [N, HWA, C]
        bbox_regression = head_outputs["bbox_regression"]  # [N, HWA, 4]
        bbox_ctrness = head_outputs["bbox_ctrness"]  # [N, HWA, 1]

        index = matched_idxs.clip(min=0)
        all_gt_classes_targets = torch.gather(labels, 1, index)
        all_gt_boxes_targets = torch.gather(boxes, 1, index[:, :, None].expand(-1, -1, 4))
        all_gt_classes_targets[matched_idxs < 0] = -1  # background

        # From here on torchvision's code, unchanged.
        foregroud_mask = all_gt_classes_targets >= 0
        num_foreground = foregroud_mask.sum().item()

        gt_classes_targets = torch.zeros_like(cls_logits)
        gt_classes_targets[foregroud_mask, all_gt_classes_targets[foregroud_mask]] = 1.0
        loss_cls = sigmoid_focal_loss(cls_logits, gt_classes_targets, reduction="sum")

        pred_boxes = self.box_coder.decode(bbox_regression, anchors)
        loss_bbox_reg = generalized_box_iou_loss(
            pred_boxes[foregroud_mask],
            all_gt_boxes_targets[foregroud_mask],
            reduction="sum",
        )

        bbox_reg_targets = self.box_coder.encode(anchors, all_gt_boxes_targets)
        if len(bbox_reg_targets) == 0:
            gt_ctrness_targets = bbox_reg_targets.new_zeros(bbox_reg_targets.size()[:-1])
        else:
            left_right = bbox_reg_targets[:, :, [0, 2]]
            top_bottom = bbox_reg_targets[:, :, [1, 3]]
            gt_ctrness_targets = torch.sqrt(
                (left_right.min(dim=-1)[0] / left_right.max(dim=-1)[0])
                * (top_bottom.min(dim=-1)[0] / top_bottom.max(dim=-1)[0])
            )
        pred_centerness = bbox_ctrness.squeeze(dim=2)
        loss_bbox_ctrness = torch.nn.functional.binary_cross_entropy_with_logits(
            pred_centerness[foregroud_mask], gt_ctrness_targets[foregroud_mask], reduction="sum"
        )
        return {
            "classification": loss_cls / max(1, num_foreground),
            "bbox_regression": loss_bbox_reg / max(1, num_foreground),
            "bbox_ctrness": loss_bbox_ctrness / max(1, num_foreground),
        }


class BatchedFCOS(FCOS):
    def compute_loss(self, targets, head_outputs, anchors, num_anchors_per_level):  # type: ignore[override]
        boxes, labels, valid = padded_targets(targets)
        anchors_b = torch.stack(anchors)  # [B, A, 4]: every image has the same anchors in a batch
        anchor_centers = (anchors_b[:, :, :2] + anchors_b[:, :, 2:]) / 2  # [B, A, 2]
        anchor_sizes = anchors_b[:, :, 2] - anchors_b[:, :, 0]  # [B, A]
        gt_centers = (boxes[:, :, :2] + boxes[:, :, 2:]) / 2  # [B, M, 2]
        # centre sampling: the anchor point close enough to the box centre
        pairwise_match = (anchor_centers[:, :, None, :] - gt_centers[:, None, :, :]).abs_().max(
            dim=3
        ).values < self.center_sampling_radius * anchor_sizes[:, :, None]
        x, y = anchor_centers.unsqueeze(dim=3).unbind(dim=2)  # [B, A, 1]
        x0, y0, x1, y1 = boxes.unsqueeze(dim=1).unbind(dim=3)  # [B, 1, M]
        pairwise_dist = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=3)  # [B, A, M, 4]
        pairwise_match &= pairwise_dist.min(dim=3).values > 0  # the point inside the box
        # each level answers for one range of sizes
        lower_bound = anchor_sizes * 4
        lower_bound[:, : num_anchors_per_level[0]] = 0
        upper_bound = anchor_sizes * 8
        upper_bound[:, -num_anchors_per_level[-1] :] = float("inf")
        pairwise_dist = pairwise_dist.max(dim=3).values
        pairwise_match &= (pairwise_dist > lower_bound[:, :, None]) & (pairwise_dist < upper_bound[:, :, None])
        pairwise_match &= valid[:, None, :]  # padding matches nothing
        # the smallest box wins where several match
        gt_areas = (boxes[:, :, 2] - boxes[:, :, 0]) * (boxes[:, :, 3] - boxes[:, :, 1])  # [B, M]
        pairwise_match = pairwise_match.to(torch.float32) * (1e8 - gt_areas[:, None, :])
        min_values, matched_idx = pairwise_match.max(dim=2)  # [B, A]
        matched_idx[min_values < 1e-5] = -1
        return self.head.compute_loss((boxes, labels, valid), head_outputs, anchors_b, matched_idx)


def as_torchvision(model: BatchedFCOS) -> FCOS:
    """A copy with the same weights in torchvision's own classes (its per-image targets): for comparisons."""
    reference = copy.deepcopy(model)
    reference.__class__ = FCOS
    reference.head.__class__ = FCOSHead
    return reference
