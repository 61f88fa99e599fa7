"""Where the authors' code and the paper differ, both forms exist: the paper's is the default
for training from scratch, the code's is what the released weights need."""

from __future__ import annotations

import pytest
import torch

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.hcat import TINY_OVERRIDES as HCAT_TINY
from ros_tracker.zoo.mixformerv2 import TINY_OVERRIDES as MIXFORMER_TINY


def test_hcat_sparse_residual_forms():
    torch.manual_seed(0)
    paper = create_model("hcat", **HCAT_TINY).eval()
    code = create_model("hcat", sparse_residual="doubled", **HCAT_TINY).eval()
    code.load_state_dict(paper.state_dict())
    assert paper.config.sparse_residual == "query"  # the paper's Eq. 2 by default
    template = torch.randn(1, 3, 64, 64)
    fs = paper.sparsify
    with torch.no_grad():
        tokens = paper._tokens(template)
        queries = fs.sparse_vectors.unsqueeze(0)
        gathered = fs.attention(queries, tokens + paper.template_pos, tokens)
        assert torch.allclose(fs(tokens, paper.template_pos), fs.norm(queries + gathered))
        # The authors' code: the attention output added to itself (src2 + dropout(src2)).
        assert torch.allclose(
            code.sparsify(tokens, code.template_pos), fs.norm(gathered + gathered), atol=1e-6
        )


def test_hcat_default_entries_keep_the_paper_form():
    for name in ("hcat", "hcat_n1", "hcat_mobilenetv2"):
        assert get_card(name).extra["sparse_residual"] == "query"
    with pytest.raises(ValueError, match="sparse_residual must be one of"):
        create_model("hcat", sparse_residual="twice", **HCAT_TINY)


def test_mixformerv2_score_pooling_forms():
    torch.manual_seed(0)
    paper = create_model("mixformerv2_s", **MIXFORMER_TINY).eval()
    code = create_model("mixformerv2_s", score_pooling="per_token", **MIXFORMER_TINY).eval()
    code.load_state_dict(paper.state_dict())
    assert paper.config.score_pooling == "mean_token"
    tokens = torch.randn(2, 4, MIXFORMER_TINY["embed_dim"])
    with torch.no_grad():
        layers = paper.score_head.layers
        assert torch.allclose(paper.score_head(tokens), layers(tokens.mean(dim=1)))
        per_token = torch.stack([layers(tokens[:, i]) for i in range(4)], dim=1).mean(dim=1)
        assert torch.allclose(code.score_head(tokens), per_token)
        # The two forms differ (the MLP is not linear), and the deployed halves still
        # equal the joint forward in the code's form.
        assert not torch.allclose(code.score_head(tokens), paper.score_head(tokens))
        inputs = code.example_inputs()
        state = code.encode_template(inputs["template"], inputs["online_template"])
        _, score = code.track_search(*state, inputs["search"])
        joint = code.forward_joint(inputs["template"], inputs["online_template"], inputs["search"])
        assert torch.allclose(score, joint["score_logit"], atol=1e-5)
    with pytest.raises(ValueError, match="score_pooling must be one of"):
        create_model("mixformerv2_s", score_pooling="max", **MIXFORMER_TINY)
