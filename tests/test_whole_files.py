"""Whole files on Cloud Storage (an emulator on loopback): one request each way, and deleted a
hundred a request."""

import pickle

import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp import gcsio

from mining.whole_files import delete_files, read_bytes, write_bytes
from pipelines.work_files import get, put
from tests.gcs_emulator import download, gcs_bucket, served


def test_work_blocks_on_cloud_storage_take_one_request_each_way(monkeypatch):
    """Through Beam's file system a block took 5 requests to write and read."""
    blocks = [np.arange(n * 1000, (n + 1) * 1000, dtype=np.int64) for n in range(30)]
    with gcs_bucket(monkeypatch) as root:
        with served() as writes:
            paths = [put(f"{root}/run/_work", f"kept/src{n:05d}", b) for n, b in enumerate(blocks)]
        with served() as reads:
            back = [get(path) for path in paths]
        assert writes["requests"] <= 30 + 1 and reads["requests"] <= 30 + 1  # + the bucket's
        assert all(np.array_equal(a, b) for a, b in zip(back, blocks, strict=True))
        assert pickle.loads(download(paths[7])).tolist() == blocks[7].tolist()
        write_bytes(paths[7], b"replaced")
        assert read_bytes(paths[7]) == b"replaced"
        large = np.random.default_rng(0).bytes(9 << 20)  # above 8 MiB: a resumable upload
        write_bytes(paths[8], large)
        assert read_bytes(paths[8]) == large and download(paths[8]) == large
        with pytest.raises(FileNotFoundError, match="_work/kept/src00030.pkl: not found"):
            get(f"{root}/run/_work/kept/src00030.pkl")


def test_files_on_cloud_storage_are_deleted_a_hundred_a_request(monkeypatch):
    """Beam's delete took 6 requests a file (three new clients' bucket lookups, two metadata
    reads, a batch of one): 1,500 for these 250 files."""
    with gcs_bucket(monkeypatch) as root:
        paths = [f"{root}/run/_work/kept/src{n:05d}.pkl" for n in range(250)]
        for path in paths:
            write_bytes(path, b"x")
        write_bytes(f"{root}/run/keep.json", b"{}")
        with served() as traffic:
            delete_files([*paths, f"{root}/run/_work/gone-already.pkl"])
        # 3 batches, each thread's bucket lookup, and the last upload's response if closed late
        assert traffic["requests"] <= 3 + 3 + 1
        listed = FileSystems.match([f"{root}/run/**"])[0].metadata_list
        assert [m.path for m in listed] == [f"{root}/run/keep.json"]

        refused = {paths[3]: 403}
        monkeypatch.setattr(
            gcsio.GcsIO,
            "delete_batch",
            lambda self, batch: [(path, refused.get(path)) for path in batch],
        )
        with pytest.raises(OSError, match=r"could not delete 1 files: .*src00003.pkl \(HTTP 403\)"):
            delete_files(paths)


def test_a_new_emulator_gets_a_new_client(monkeypatch):
    """A client keeps the endpoint it was made for; the next bucket is on another port."""
    for text in (b"first", b"second"):
        with gcs_bucket(monkeypatch) as root:
            write_bytes(f"{root}/file.txt", text)
            assert download(f"{root}/file.txt") == text


def test_the_client_is_made_with_the_options_beams_file_systems_get(monkeypatch):
    """On a worker, the job's options: a service account to impersonate reaches the client."""
    from apache_beam.internal.gcp import auth
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    account = "miner@project.iam.gserviceaccount.com"
    options = PipelineOptions([f"--impersonate_service_account={account}"])
    asked = []
    with gcs_bucket(monkeypatch) as root:
        monkeypatch.setattr(FileSystems, "_pipeline_options", options)
        monkeypatch.setattr(
            auth,
            "get_service_credentials",
            lambda options: asked.append(options.view_as(GoogleCloudOptions)),
        )
        write_bytes(f"{root}/file.txt", b"x")
    assert [o.impersonate_service_account for o in asked] == [account]


def test_local_files_round_trip(tmp_path):
    path = str(tmp_path / "new" / "block.bin")
    write_bytes(path, bytes(range(256)))
    assert read_bytes(path) == bytes(range(256))
    delete_files([path])
    assert not (tmp_path / "new" / "block.bin").exists()


def test_a_local_write_that_fails_leaves_the_old_file(tmp_path):
    """A killed run's record must not be left empty: the next run reads it to resume."""
    path = tmp_path / "_resume.json"
    path.write_text('{"stage": "embed"}')
    with pytest.raises(TypeError):
        write_bytes(str(path), None)  # fails while writing
    assert path.read_text() == '{"stage": "embed"}'
    assert [p.name for p in tmp_path.iterdir()] == ["_resume.json"]
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path / "missing.bin"))
