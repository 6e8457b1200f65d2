"""The fusion network on frozen encoder features.

Per dimension, a query conditioned on the image attends over the narrative's sentence
units; the pooled text, its element-wise product with the image (the cross-modal
signal: does what is said fit what is seen?), the image itself and simple text
statistics feed that dimension's head, which outputs a mean rating and a log-variance
(the uncertainty). A defect head predicts which known problems the narrative has;
the critique reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from dermeval.encoders.image import FEATURE_DIM as IMAGE_DIM
from dermeval.encoders.text import FEATURE_DIM as TEXT_DIM
from dermeval.features import LENGTH_STATS, N_STATS
from dermeval.schema import DIMENSIONS


@dataclass(frozen=True)
class NetConfig:
    """The saved network's shape and wiring (``config.json``), built from the training configuration."""

    hidden: int
    dropout: float
    n_defects: int  # the clinical problems the problem head predicts
    n_categories: int
    length_inputs: bool
    # The category the case shows is read from the image and from the narrative's other sentences
    # (the findings it describes), not the image alone.
    context_category: bool
    # The problem head also reads the diagnosis-vs-image verdict (so the critique can name a wrong diagnosis).
    defects_read_match: bool
    # The conclusion's category also comes from the diagnosis vocabulary (dermeval.diagnosis):
    # where it knows the name, its answer outweighs the learned text head.
    vocab_category: bool
    # A second verdict: the conclusion against the image alone (the findings cannot outvote it), read by
    # the rating and problem heads, so a narrative paired with another case's image loses Accuracy.
    image_verdict: bool
    # Networks trained from different seeds and read as one (DermEvalEnsemble); 1: a single network.
    members: int = 1
    image_dim: int = IMAGE_DIM  # the encoders' widths, not settings
    text_dim: int = TEXT_DIM
    n_stats: int = N_STATS

    @classmethod
    def from_train(cls, cfg: Any, n_defects: int, n_categories: int) -> NetConfig:
        return cls(hidden=cfg.hidden, dropout=cfg.dropout, n_defects=n_defects, n_categories=n_categories,
                   length_inputs=cfg.length_inputs, context_category=cfg.context_category,
                   defects_read_match=cfg.defects_read_match, vocab_category=cfg.vocab_category,
                   image_verdict=cfg.image_verdict, members=cfg.members)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> NetConfig:
        """A saved ``config.json``; a key an older version did not write takes the value that version
        was trained with (LEGACY), so an earlier registered model loads as it was."""
        return cls(**{**LEGACY, **saved})

    def to_dict(self) -> dict:
        return asdict(self)


# What a config saved before a wiring option existed was trained with.
LEGACY: dict[str, Any] = {"length_inputs": True, "context_category": False, "defects_read_match": False,
                          "vocab_category": False, "image_verdict": False, "members": 1}


class DermEvalNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        h, n_dim = cfg.hidden, len(DIMENSIONS)
        self.cfg = cfg
        self.n_verdict = 4 if cfg.image_verdict else 2
        self.img = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h), nn.GELU())
        self.txt = nn.Sequential(nn.Linear(cfg.text_dim, h), nn.GELU(), nn.Linear(h, h))
        self.pos = nn.Linear(2, h)  # relative position in the narrative, and its square
        # Sentence detector for max-pooling: raw sentence embeddings, no position, own weights.
        self.sent = nn.Sequential(nn.Linear(cfg.text_dim, h), nn.GELU(), nn.Linear(h, h))
        self.null = nn.Parameter(torch.zeros(1, 1, h))  # always present: an empty narrative attends here
        self.queries = nn.Parameter(torch.randn(n_dim, h) / math.sqrt(h))
        self.q_img = nn.Linear(h, h)
        self.key, self.val = nn.Linear(h, h), nn.Linear(h, h)
        # Which text statistics the rating heads read: all, or the flags only (no length measures).
        self.first_stat = 0 if cfg.length_inputs else LENGTH_STATS
        self.heads = nn.ModuleList([
            nn.Sequential(nn.Linear(4 * h + cfg.n_stats - self.first_stat + max(cfg.n_defects, 1) + self.n_verdict, h),
                          nn.GELU(),
                          nn.Dropout(cfg.dropout), nn.Linear(h, 2))
            for _ in DIMENSIONS])
        # What the image shows and what the conclusion names, each as a category distribution;
        # their overlap is the explicit reference-free check of the diagnosis against the image.
        n_cat = max(cfg.n_categories, 1)
        self.image_category = nn.Linear(h, n_cat)
        self.text_category = nn.Sequential(nn.Linear(cfg.text_dim, h), nn.GELU(), nn.Linear(h, n_cat))
        self.mismatch = nn.Parameter(torch.zeros(n_dim))  # direct path: mismatch -> lower rating
        n_match = self.n_verdict if cfg.defects_read_match else 0
        self.defects = nn.Sequential(nn.Linear(n_dim * h + 2 * h + n_match, h), nn.GELU(),
                                     nn.Linear(h, max(cfg.n_defects, 1)))
        if cfg.context_category:  # created last, so the modules above start as they did without it
            self.context_category = nn.Sequential(nn.Linear(cfg.text_dim, h), nn.GELU(), nn.Linear(h, n_cat))
        if cfg.image_verdict:
            self.mismatch_image = nn.Parameter(torch.zeros(n_dim))  # direct path: image mismatch -> lower

    def forward(self, image: torch.Tensor, units: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor,
                conclusion: torch.Tensor, vocab: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """image (B, 1280); units (B, L, 384); mask (B, L) true where a unit exists; stats (B, S);
        conclusion (B,) index of the conclusion unit or -1; vocab (B, C + 1) the vocabulary's
        category distribution of the conclusion and its weight (0: the vocabulary knows nothing)."""
        b, length, _ = units.shape
        img = self.img(image)
        has_concl = (conclusion >= 0).to(units.dtype)
        concl_emb = units[torch.arange(b), conclusion.clamp(min=0)] * has_concl[:, None]
        img_cat, txt_cat = self.image_category(img), self.text_category(concl_emb)
        seen_cat = img_cat
        if self.cfg.context_category:
            # The findings (every sentence but the conclusion, mean-pooled) as a second witness of
            # what the case shows: their evidence adds to the image's (a product of experts).
            idx = torch.arange(length, device=units.device)[None, :]
            ctx_mask = (mask & (idx != conclusion[:, None])).to(units.dtype)
            ctx = (units * ctx_mask[..., None]).sum(1) / ctx_mask.sum(1, keepdim=True).clamp(min=1)
            seen_cat = img_cat.detach() + self.context_category(ctx)
        named = txt_cat.softmax(-1)
        if self.cfg.vocab_category and vocab is not None:
            weight = vocab[:, -1:]
            named = weight * vocab[:, :-1] + (1 - weight) * named
        # Detached: the category heads learn categories only; the rating heads read their verdict.
        match = (seen_cat.softmax(-1) * named).sum(-1).detach() * has_concl
        pos = torch.arange(length, device=units.device, dtype=units.dtype)[None, :]
        pos = pos / mask.sum(1, keepdim=True).clamp(min=1)
        tok = self.txt(units) + self.pos(torch.stack([pos, pos**2], -1))
        tok = torch.cat([self.null.expand(b, 1, -1), tok], 1)
        full_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], 1)
        q = self.queries[None] + self.q_img(img)[:, None]  # (B, 6, h)
        logits = torch.einsum("bdh,blh->bdl", q, self.key(tok)) / math.sqrt(q.shape[-1])
        attn = logits.masked_fill(~full_mask[:, None], float("-inf")).softmax(-1)
        pooled = torch.einsum("bdl,blh->bdh", attn, self.val(tok))  # (B, 6, h)
        # Max-pooling keeps a single telling sentence (unsafe advice, a plea to the evaluator)
        # from being averaged away in a long narrative.
        sent = self.sent(units).masked_fill(~mask[..., None], float("-inf")).amax(1)
        tok_max = torch.where(mask.any(1, keepdim=True), sent, torch.zeros_like(sent))
        verdict = [match, torch.log(match + 1e-3) * has_concl]
        match_image = match
        shift = self.mismatch * ((1 - match) * has_concl)[:, None]
        if self.cfg.image_verdict:
            match_image = (img_cat.softmax(-1) * named).sum(-1).detach() * has_concl
            verdict += [match_image, torch.log(match_image + 1e-3) * has_concl]
            shift = shift + self.mismatch_image * ((1 - match_image) * has_concl)[:, None]
        verdict = torch.stack(verdict, -1)
        defect_in = [pooled.flatten(1), img, tok_max] + ([verdict] if self.cfg.defects_read_match else [])
        defect_logits = self.defects(torch.cat(defect_in, -1))
        found = torch.sigmoid(defect_logits)
        outs = []
        stats = stats[:, self.first_stat:]
        for d, head in enumerate(self.heads):
            z = torch.cat([pooled[:, d], pooled[:, d] * img, img, tok_max, stats, found, verdict], -1)
            outs.append(head(z))
        out = torch.stack(outs, 1)  # (B, 6, 2)
        mean = 5.0 * torch.sigmoid(out[..., 0] + shift)
        logvar = out[..., 1].clamp(-8, 4)
        return {"mean": mean, "logvar": logvar, "attention": attn[..., 1:], "defect_logits": defect_logits,
                "image_category": img_cat, "seen_category": seen_cat, "text_category": txt_cat,
                "match": match, "match_image": match_image, "named_category": named}


class DermEvalEnsemble(nn.Module):
    """``cfg.members`` networks of one wiring, trained from different seeds, read as one network.

    The rating is the members' mean. The variance is the mixture's: the members' own predicted
    variance (the raters' spread) plus their disagreement (what the training data did not settle),
    so the uncertainty, and with it needs_review, grows where the members part ways. Problem
    probabilities, diagnosis verdicts and attention are averaged; category logits are averaged as
    log-probabilities.
    """

    def __init__(self, cfg: NetConfig, members: Sequence[DermEvalNet] | None = None) -> None:
        """Fresh members (to load saved weights into), or ``members`` already trained, as they are."""
        super().__init__()
        self.cfg = cfg
        if members is not None and len(members) != cfg.members:
            raise ValueError(f"an ensemble of {cfg.members} members was given {len(members)} networks")
        self.members = nn.ModuleList(list(members) if members is not None
                                     else [DermEvalNet(cfg) for _ in range(cfg.members)])

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return combine_members([m(**inputs) for m in self.members])


def combine_members(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One output from the members' outputs (see :class:`DermEvalEnsemble`)."""
    def stack(key: str) -> torch.Tensor:
        return torch.stack([o[key] for o in outs])

    means = stack("mean")
    var = stack("logvar").exp().mean(0) + means.var(0, unbiased=False)
    probs = torch.sigmoid(stack("defect_logits")).mean(0).clamp(1e-6, 1 - 1e-6)
    out = {"mean": means.mean(0), "logvar": var.log(), "defect_logits": torch.log(probs) - torch.log1p(-probs)}
    for key in ("image_category", "seen_category", "text_category"):
        out[key] = stack(key).log_softmax(-1).mean(0)
    for key in ("attention", "match", "match_image", "named_category"):
        out[key] = stack(key).mean(0)
    return out


def build_network(cfg: NetConfig) -> DermEvalNet | DermEvalEnsemble:
    """The network a configuration describes: one, or an ensemble of ``cfg.members``."""
    return DermEvalNet(cfg) if cfg.members == 1 else DermEvalEnsemble(cfg)
