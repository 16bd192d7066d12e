"""Devices are checked before a fit does any work, with the choices in the message."""

import pytest
import torch
from sklearn.datasets import load_iris

from sk_mlcpc import (
    ContrastiveDistillationClassifier,
    ContrastiveEncoder,
    ContrastivePredictiveCoding,
    ModelFileError,
    MutualInformationEstimator,
)
from sk_mlcpc._nn.devices import resolve_device
from sk_mlcpc._tools.cli import main
from sk_mlcpc.datasets import make_correlated_gaussians, make_frequency_sequences

CHOICES = r"choose 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def test_cpu_and_auto_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    "device, message",
    [
        ("nonsense", r"device='nonsense' is not a device; " + CHOICES),
        ("cuda:x", r"device='cuda:x' is not a device; " + CHOICES),
        ("", r"device='' is not a device; " + CHOICES),
        ("meta", r"device='meta' cannot train a model \(a 'meta' tensor holds no data\); "),
        (torch.device("meta"), r"device=device\(type='meta'\) cannot train a model"),
        ("xpu", r"device='xpu' is not a device sk-mlcpc trains on; " + CHOICES),
    ],
)
def test_unusable_devices_are_a_value_error_naming_the_choices(device, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1)])
def test_cuda_without_cuda(device):
    with pytest.raises(ValueError, match="CUDA is not available on this machine; use device='cpu'"):
        resolve_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_index_past_the_last():
    count = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"names GPU {count}, but this machine has {count}"):
        resolve_device(f"cuda:{count}")


def _fits():
    X, Y, _ = make_correlated_gaussians(200, 2, mi=1.0, random_state=0)
    sequences, _ = make_frequency_sequences(40, 24, random_state=0)
    iris_X, iris_y = load_iris(return_X_y=True)
    small = dict(hidden_layer_sizes=(4,), max_epochs=1, random_state=0)
    return {
        "mi": (lambda d: MutualInformationEstimator(device=d, **small), (X, Y)),
        "encoder": (lambda d: ContrastiveEncoder(device=d, n_components=2, **small), (X,)),
        "cpc": (
            lambda d: ContrastivePredictiveCoding(
                device=d,
                window=8,
                stride=4,
                prediction_steps=1,
                n_components=4,
                latent_dim=4,
                batch_size=8,
                **small,
            ),
            (sequences,),
        ),
        "distiller": (
            lambda d: ContrastiveDistillationClassifier(
                device=d,
                teacher_params={"hidden_layer_sizes": (4,), "max_iter": 5},
                n_components=4,
                n_negatives=8,
                batch_size=16,
                **small,
            ),
            (iris_X, iris_y),
        ),
    }


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", ["mi", "encoder", "cpc", "distiller"])
@pytest.mark.parametrize("device", ["nonsense", "meta"])
def test_every_estimator_rejects_the_device_in_fit_with_the_choices(kind, device):
    make, data = _fits()[kind]
    with pytest.raises(ValueError, match=f"device='{device}' .*" + CHOICES):
        make(device).fit(*data)


def test_load_rejects_the_device_as_a_device_error(tmp_path):
    X, Y, _ = make_correlated_gaussians(200, 2, mi=1.0, random_state=0)
    MutualInformationEstimator(hidden_layer_sizes=(4,), max_epochs=1).fit(X, Y).save(
        tmp_path / "m.skmlcpc"
    )
    with pytest.raises(ValueError, match="is not a device") as caught:
        MutualInformationEstimator.load(tmp_path / "m.skmlcpc", device="nonsense")
    assert not isinstance(caught.value, ModelFileError)


@pytest.mark.parametrize("command", ["estimate x.csv y.csv", "staircase --steps 1"])
@pytest.mark.parametrize("device", ["nonsense", "meta"])
def test_the_cli_names_the_device_option_in_one_line(capsys, command, device):
    assert main([*command.split(), "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: argument --device: device='{device}'" in err
    assert CHOICES in err
