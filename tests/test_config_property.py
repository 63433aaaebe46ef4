"""Property test of the config check (hypothesis): valid configs mutated one field at a time (wrong types, negatives,
zero, NaN, infinities, huge values, unknown keys, nested junk) are either accepted or refused in one line that names
the field; and a stage command given such a config exits 1 with one line, writes nothing, never a traceback.
Derandomized, so every run tries the same examples; each test prints (pytest -s) and asserts how many it tried."""
import contextlib, io, json
from pathlib import Path
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from semples.cli import main
from semples.config import SCHEMA, CONFIG_SECTIONS, check_config, preset_config

def tiny()->dict:
    "The ToyWorld preset with a world of a few images: what the mutations start from."
    c = preset_config('toyworld'); c['data']['world'].update(n_train=8, n_tune=4, n_test=4); return json.loads(json.dumps(c))

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 1, 2**31, 10**40, 0.0, -0.5, 1e300, float('nan'), float('inf'), -float('inf')]),
                    st.text(max_size=6), st.sampled_from(['', '448', '0.5', 'tune', 'auto', 'cpu', 'cuda:1', 'bf16', '{}', 'voc']))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=2)), max_leaves=6)
FIELDS = [(s, f) for s in (*CONFIG_SECTIONS, 'world') for f in SCHEMA[s]]

@st.composite
def mutation(draw)->tuple:
    "(config, the names one of which a refusal must contain)."
    c, kind = tiny(), draw(st.sampled_from(['field', 'field', 'field', 'unknown', 'section', 'top']))
    if kind == 'field':
        s, f = draw(st.sampled_from(FIELDS)); v = draw(JUNK)
        (c['data']['world'] if s == 'world' else c[s])[f] = v
        names = {f'{s}.{f}', 'data.root'} if (s, f) == ('data', 'kind') else {f'{s}.{f}'}   # kind 'voc' needs a root
        return c, names
    if kind == 'unknown':
        s = draw(st.sampled_from(CONFIG_SECTIONS)); k = 'x' + draw(st.text(min_size=1, max_size=4)); c[s][k] = draw(JUNK)
        return c, {repr(k)}
    if kind == 'section':
        s = draw(st.sampled_from(CONFIG_SECTIONS)); c[s] = draw(JUNK); return c, {s}
    k = draw(st.sampled_from(['preset', 'seed', 'presett'])); c[k] = draw(JUNK)
    return c, {'preset', 'data.root'} if k == 'preset' else {k}

def one_line_naming(msg:str, names:set, where:str)->bool: return '\n' not in msg and where in msg and any(n in msg for n in names)

def runs(n:int)->settings: return settings(max_examples=n, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))

def test_check_config_accepts_or_names_the_field():
    "2,000 mutated configs: each accepted, or refused by a ValueError of one line naming the mutated field."
    seen = dict(checked=0, accepted=0)
    @runs(2000)
    @given(mutation())
    def prop(m):
        cfg, names = m; seen['checked'] += 1
        try: check_config(cfg, 'c.json'); seen['accepted'] += 1
        except ValueError as e: assert one_line_naming(str(e), names, 'c.json'), (str(e), names)
    prop()
    print(f"\nconfig property: {seen['checked']} configs checked, {seen['accepted']} accepted")
    assert seen['checked'] >= 2000

def test_stage_command_refuses_in_one_line_and_writes_nothing(tmp_path_factory):
    "Each stage after cam on an empty run folder, 400 times: the config is refused (the field named) or the missing stage is; nothing is written."
    seen = dict(commands=0)
    @runs(400)
    @given(mutation(), st.sampled_from(['match', 'prompts', 'refine', 'pseudo', 'score', 'segment', 'objective']))
    def prop(m, cmd):
        (cfg, names), d = m, tmp_path_factory.mktemp('p'); seen['commands'] += 1
        (d/'c.json').write_text(json.dumps(cfg))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()): code = main([cmd, '--config', str(d/'c.json'), '--out', str(d/'run'), '--quiet'])
        e = err.getvalue()
        assert code == 1 and e.count('\n') == 1 and (one_line_naming(e.strip(), names, str(d/'c.json')) or 'first' in e), e
        assert sorted(p.name for p in d.iterdir()) == ['c.json'], e
    prop()
    print(f"\nconfig property: {seen['commands']} stage commands run")
    assert seen['commands'] >= 400
