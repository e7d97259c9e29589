"""Tests of the `kiln` Python module (python/kiln_module.cc) through libkiln.so: sessions on
ONNX models and packages, NumPy in and out, results against the ONNX backend test data's
expected outputs (known ONNX outputs) and NumPy, float conversion at the boundary, the plan
report, convert / quantize / pack / compile, and errors as kiln.Error with Kiln's message.

Run from CTest (`ctest -R python`), or by hand:
  PYTHONPATH=build/python KILN_API_MODELS=build/api_models /usr/bin/python3 -m pytest python/tests
"""
import os
import threading

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import kiln

MODELS = os.environ.get('KILN_API_MODELS', 'build/api_models')
NODE_DATA = '/usr/share/libonnx-testdata/data/node'


def read_pb(path):
    t = onnx.TensorProto()
    with open(path, 'rb') as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


@pytest.mark.parametrize('case', ['test_relu', 'test_add_bcast', 'test_softmax_example',
                                  'test_conv_with_strides_padding', 'test_matmul_2d'])
def test_matches_onnx_expected_outputs(case):
    d = os.path.join(NODE_DATA, case)
    s = kiln.Session(os.path.join(d, 'model.onnx'))
    data = os.path.join(d, 'test_data_set_0')
    feeds = {v.name: read_pb(os.path.join(data, f'input_{i}.pb')) for i, v in enumerate(s.inputs)}
    out = s.run(feeds)
    assert list(out) == [v.name for v in s.outputs]
    for i, v in enumerate(s.outputs):
        want = read_pb(os.path.join(data, f'output_{i}.pb'))
        assert out[v.name].dtype == want.dtype
        np.testing.assert_allclose(out[v.name], want, rtol=1e-5, atol=1e-6)


def test_inputs_outputs_and_run():
    s = kiln.Session(os.path.join(MODELS, 'add.onnx'), threads=2, config={'OpBackend.Add': 'ref'})
    assert [v.name for v in s.inputs] == ['x']
    assert s.inputs[0].type == 'f32'
    assert s.inputs[0].shape == ('batch', 3)
    assert [v.name for v in s.outputs] == ['y', 'z']
    assert 'ValueInfo(name=' in repr(s.inputs[0])
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    out = s.run({'x': x})
    np.testing.assert_array_equal(out['y'], x + np.array([1, 2, 3], np.float32))
    np.testing.assert_array_equal(out['z'], np.maximum(x, 0))
    # A non-contiguous view and a float64 array are accepted (converted at the boundary).
    out = s.run({'x': np.asfortranarray(x.astype(np.float64))})
    np.testing.assert_array_equal(out['z'], np.maximum(x, 0))
    assert out['z'].dtype == np.float32
    assert s.served_by == 'model ' + os.path.join(MODELS, 'add.onnx')


def test_float16_program_takes_float32():
    s = kiln.Session(os.path.join(MODELS, 'half.onnx'))
    assert s.inputs[0].type == 'f16'
    x = np.array([[-1, 0.5, 2], [-3, 1000, 0.1]], np.float32)
    y = s.run({'x': x})['y']
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.maximum(x.astype(np.float16), 0) * np.float16(2))


def test_errors_carry_kilns_message():
    with pytest.raises(kiln.Error, match='/nonexistent.onnx') as e:
        kiln.Session('/nonexistent.onnx')
    assert e.value.status == 'not found'
    assert isinstance(e.value, RuntimeError)
    with pytest.raises(kiln.Error, match="unknown config key 'Nope'"):
        kiln.Session(os.path.join(MODELS, 'add.onnx'), config={'Nope': 1})
    with pytest.raises(kiln.Error, match="units='gpu'"):
        kiln.Session(os.path.join(MODELS, 'add.onnx'), units='gpu')
    with pytest.raises(kiln.Error, match='threads is 0'):
        kiln.Session(os.path.join(MODELS, 'add.onnx'), threads=0)
    s = kiln.Session(os.path.join(MODELS, 'add.onnx'))
    with pytest.raises(kiln.Error, match=r"no input named 'q' \(inputs: x\)"):
        s.run({'q': np.zeros((1, 3), np.float32)})
    with pytest.raises(kiln.Error, match="input 0 'x' is not bound") as e:
        s.run({})
    assert e.value.status == 'wrong order'
    with pytest.raises(kiln.Error, match=r'shape \[1,4\] given, dim 1 must be 3'):
        s.run({'x': np.zeros((1, 4), np.float32)})
    with pytest.raises(kiln.Error, match="input 'x' is f32, the data is i32"):
        s.run({'x': np.zeros((1, 3), np.int32)})
    with pytest.raises(kiln.Error, match='numpy dtype complex64'):
        s.run({'x': np.zeros((1, 3), np.complex64)})
    with pytest.raises(kiln.Error, match="dynamic dim 0 \\('batch'\\)"):
        s.plan()
    with pytest.raises(kiln.Error, match='bare ONNX model'):
        s.compile_now()


def test_plan_report():
    s = kiln.Session(os.path.join(MODELS, 'add.onnx'), config={'OpBackend.Add': 'ref'})
    p = s.plan({'x': np.zeros((4, 3), np.float32)})
    nodes = {n['name']: n for n in p['nodes']}
    assert nodes['add0']['backend'] == 'ref'
    assert p['model'] == 'add.onnx'


def test_threads_share_one_session():
    s = kiln.Session(os.path.join(MODELS, 'conv.onnx'), threads=2)
    x = np.sin(np.arange(8 * 32 * 32, dtype=np.float32)).reshape(1, 8, 32, 32)
    want = s.run({'x': x})['y']
    got = [None] * 4

    def work(i):
        got[i] = [s.run({'x': x})['y'] for _ in range(5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in got:
        for y in g:
            np.testing.assert_array_equal(y, want)


def test_convert_quantize_pack_compile(tmp_path):
    conv = os.path.join(MODELS, 'conv.onnx')
    x = np.random.default_rng(0).random((1, 8, 32, 32), np.float32)
    ref = kiln.Session(conv).run({'x': x})['y']
    kiln.convert(conv, str(tmp_path / 'conv.fp16.onnx'))
    half = kiln.Session(str(tmp_path / 'conv.fp16.onnx'))
    assert half.inputs[0].type == 'f16'
    y16 = half.run({'x': x})['y'].astype(np.float32)
    assert np.linalg.norm(y16 - ref) / np.linalg.norm(ref) < 5e-3
    with pytest.raises(kiln.Error, match='bogus:1'):
        kiln.convert(conv, str(tmp_path / 'c.onnx'), keep_fp32='bogus:1')
    with pytest.raises(kiln.Error, match="precision='fp8'"):
        kiln.convert(conv, str(tmp_path / 'c.onnx'), precision='fp8')

    kiln.quantize(conv, str(tmp_path / 'conv.q8.onnx'), os.path.join(MODELS, 'calib'))
    q8 = kiln.Session(str(tmp_path / 'conv.q8.onnx'))
    assert any(n['op_type'] == 'QuantizeLinear' for n in q8.plan()['nodes'])
    yq = q8.run({'x': x})['y']
    assert np.linalg.norm(yq - ref) / np.linalg.norm(ref) < 0.05
    with pytest.raises(kiln.Error, match='weight_bits is 4'):
        kiln.quantize(conv, str(tmp_path / 'q.onnx'), os.path.join(MODELS, 'calib'), weight_bits=4)

    pkg = str(tmp_path / 'conv.kiln')
    with pytest.raises(kiln.Error, match='OdcTriger'):
        kiln.pack(conv, pkg, config={'OdcTriger': 'manual'})
    kiln.pack(conv, pkg, config={'OnDeviceCompilation': True, 'OdcTrigger': 'manual',
                                 'OdcMode': 'compile'})
    s = kiln.Session(pkg)
    assert s.served_by == 'float model models/conv.onnx'
    for _ in range(3):
        np.testing.assert_array_equal(s.run({'x': x})['y'], ref)
    st = s.odc_status()
    assert st['enabled'] and st['recording'] and st['records'] == 3
    s.set_recording(False)
    s.run({'x': x})
    assert s.odc_status()['records'] == 3
    del s
    r = kiln.compile(pkg)
    assert r['outcome'] == 'accepted', r
    s = kiln.Session(pkg)
    assert s.served_by.startswith('compiled plan compiled/'), s.served_by
    np.testing.assert_array_equal(s.run({'x': x})['y'], ref)
    assert any(e['outcome'] == 'accepted' for e in s.odc_history())
    with pytest.raises(kiln.Error, match='is not a Kiln package'):
        kiln.compile(conv)


def test_docstrings():
    for f in (kiln.Session, kiln.Session.run, kiln.Session.plan, kiln.convert, kiln.quantize,
              kiln.pack, kiln.compile, kiln.Error):
        assert f.__doc__ and len(f.__doc__) > 20, f
    assert kiln.__version__.count('.') == 2
