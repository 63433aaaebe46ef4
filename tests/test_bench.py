"semples.research.bench: the tiny CPU benchmark runs every stage, counts FLOPs, writes JSON, reports ratios; padded pairs are exact."
import json, math
import pytest
import torch
from semples.research.bench import run_bench, bench_markdown, bf16_peak, count_flops, synthetic_labels, STAGES
from semples.cam import create_cam_net, toy_cam_config
from semples.clip import load_clip, random_clip_dir, positive_pairs
from semples.matching import MatchConfig, MatchLoss, collate_pairs, pad_pairs
from semples.refine import RefineConfig, RefineLoss


@pytest.fixture(scope='module')
def tiny_result(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    return run_bench(tiny=True, device='cpu', out=str(out), quiet=True), out


def test_tiny_bench_every_stage(tiny_result):
    res, out = tiny_result
    assert {r['stage'] for r in res['rows']} == set(STAGES)
    for r in res['rows']:
        assert r['items_per_s'] > 0 and r['step_ms'] > 0, r
        assert r['gflop_per_step'] > 0, r
        assert math.isnan(r['peak_gib']) and math.isnan(r['peak_fraction'])   # CPU: no GPU memory, no bf16 peak
    assert set(res['ratios']) == {'match', 'refine', 'prompts', 'prompts_feat', 'pseudo'}
    assert res['ratios']['match']['baseline'] == 'reference' and res['ratios']['pseudo']['baseline'] == 'fp32'
    assert all(v['ratio'] > 0 for v in res['ratios'].values())
    saved = json.loads((out/'bench.json').read_text())
    assert saved['tiny'] and len(saved['rows']) == len(res['rows'])
    md = bench_markdown(res)
    assert md.count('\n| ') == len(res['rows']) + 1 and 'ratio match:' in md


def test_reference_step_does_more_text_work(tiny_result):
    rows = {(r['stage'], r['variant']): r for r in tiny_result[0]['rows']}
    # the reference re-encodes the 20 class sentences every step: more FLOPs than the fast step with cached text
    assert rows[('match', 'reference')]['gflop_per_step'] > rows[('match', 'fast')]['gflop_per_step']


def test_bad_stage_and_peaks():
    with pytest.raises(ValueError, match='unknown stage'): run_bench(stages='match,x', tiny=True, quiet=True)
    with pytest.raises(ValueError, match='unknown compile stage'): run_bench(stages='match', compile=True, compile_stages='q', tiny=True, quiet=True)
    assert bf16_peak('NVIDIA H200')[0] == 989.0 and bf16_peak('NVIDIA H100 PCIe')[0] == 756.0
    assert math.isnan(bf16_peak('Some New Card')[0])


def test_synthetic_labels_and_flop_count():
    y = synthetic_labels(64, 20, torch.Generator().manual_seed(3))
    assert int(y.sum()) == 96 and bool((y.sum(1) >= 1).all()) and int(y.sum(1).max()) == 2
    w = torch.randn(8, 4, requires_grad=True)
    assert count_flops(lambda i: (torch.randn(3, 8) @ w).sum().backward()) == 2 * (2 * 3 * 8 * 4)


# ---------------------------------------------------------------- padded pairs are exact
@pytest.fixture(scope='module')
def rclip(tmp_path_factory):
    return load_clip(str(random_clip_dir(tmp_path_factory.mktemp('rc') / 'clip')))


def _items(n=5):
    g = torch.Generator().manual_seed(0)
    y = synthetic_labels(n, 6, g)
    return [dict(image=torch.rand(3, 64, 64, generator=g), labels=y[i], id=str(i)) for i in range(n)]


@pytest.mark.parametrize('bucket', [4, 16, 32])
@pytest.mark.parametrize('refine', [False, True])
def test_padded_pairs_give_the_same_loss_and_gradients(rclip, bucket, refine):
    items, classes = _items(), [f'class{i}' for i in range(6)]
    bg = torch.nn.functional.normalize(torch.randn(6, rclip.embed_dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    res = []
    for b in (0, bucket):
        torch.manual_seed(0); net = create_cam_net(toy_cam_config())
        kw = dict(sim_map='affine', pair_bucket=b)
        lf = RefineLoss(rclip, classes, RefineConfig(lambda_ref=0.5, ref_sim_map='affine', **kw), bg) if refine else MatchLoss(rclip, classes, MatchConfig(**kw))
        batch = lf.collate(items)
        if b: assert batch['pair_idx'].shape[1] % b == 0 and batch['pair_idx'].shape[1] > int(batch['pair_w'].sum())
        loss, met, n = lf(net, batch)
        assert float(n) == float((batch['labels'] > 0).sum())   # the weight counts real pairs, never padding
        loss.backward()
        res.append((loss.detach(), met, [p.grad.clone() for p in net.parameters()]))
    (l0, m0, g0), (l1, m1, g1) = res
    assert torch.allclose(l0, l1, atol=1e-6, rtol=1e-6)
    for k in m0: assert torch.allclose(m0[k], m1[k], atol=1e-6), k
    for a, b in zip(g0, g1): assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_pad_pairs_and_batches_without_collated_pairs(rclip):
    (b, c), w = pad_pairs((torch.tensor([0, 1, 1]), torch.tensor([2, 0, 3])), 4)
    assert b.tolist() == [0, 1, 1, 0] and c.tolist() == [2, 0, 3, 2] and w.tolist() == [1, 1, 1, 0]
    (b, c), w = pad_pairs((torch.tensor([0, 1]), torch.tensor([2, 0])), 0)
    assert len(b) == 2 and w.tolist() == [1, 1]
    with pytest.raises(ValueError, match='no positive'): pad_pairs((torch.zeros(0, dtype=torch.long),) * 2, 8)
    with pytest.raises(ValueError, match='no positive'):
        collate_pairs([dict(image=torch.rand(3, 8, 8), labels=torch.zeros(6), id='0')])
    items, classes = _items(), [f'class{i}' for i in range(6)]
    torch.manual_seed(0); net = create_cam_net(toy_cam_config())
    lf = MatchLoss(rclip, classes, MatchConfig(pair_bucket=8))
    from semples.loop import collate
    l_plain = lf(net, collate(items))[0]        # pairs derived from the labels in the loss
    l_coll = lf(net, lf.collate(items))[0]      # pairs shipped with the batch
    assert torch.allclose(l_plain, l_coll, atol=1e-6)
