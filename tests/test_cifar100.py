"""CIFAR-100 reader: the official pickle layout, checksum checks, one-line errors offline or on a corrupt archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import cifar100
from engine.errors import DataError
from tests.cifar_fixture import write_cifar100


def test_reads_generated_archive(tmp_path: Path) -> None:
    md5 = write_cifar100(tmp_path, train_per_class=3, test_per_class=2, classes=10)
    a = cifar100.load_cifar100(tmp_path, download=False, expected_md5=md5)
    assert a.x_train.shape == (30, 3, 32, 32) and a.x_train.dtype == np.uint8
    assert a.x_test.shape == (20, 3, 32, 32)
    assert sorted(np.bincount(a.y_train).tolist()) == [3] * 10
    assert a.class_names[3] == "class03" and len(a.class_names) == 100


def test_official_checksum_is_the_default(tmp_path: Path) -> None:
    write_cifar100(tmp_path, 2, 1, classes=5)
    with pytest.raises(DataError, match="MD5") as e:
        cifar100.load_cifar100(tmp_path, download=False)
    assert "\n" not in str(e.value) and cifar100.OFFICIAL_MD5 in str(e.value)


def test_corrupt_archive_is_one_line(tmp_path: Path) -> None:
    write_cifar100(tmp_path, 2, 1, classes=5)
    path = tmp_path / cifar100.ARCHIVE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated download
    md5 = cifar100.md5sum(path)
    with pytest.raises(DataError, match="cannot be read") as e:
        cifar100.load_cifar100(tmp_path, download=False, expected_md5=md5)
    assert "\n" not in str(e.value)


def test_offline_without_archive_names_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*a: object, **k: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(cifar100.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        cifar100.load_cifar100(tmp_path / "nowhere")
    msg = str(e.value)
    assert cifar100.ARCHIVE in msg and str(tmp_path / "nowhere") in msg and cifar100.URL in msg and "\n" not in msg
    assert not (tmp_path / "nowhere" / cifar100.ARCHIVE).exists()
