"""asr.outputs: an output onto an input is refused, writes are atomic, unwritable folders fail early."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reliability import record

from asr.errors import EXIT_OUTPUT, OutputError
from asr.outputs import check_output_dir, refuse_overwrite, write_bytes_atomic, write_text_atomic


def _aliases(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """(output, input) pairs that name one file in different ways."""
    corpus = tmp_path / "data" / "corpus.txt"
    corpus.parent.mkdir()
    corpus.write_text("hello world\n")
    (tmp_path / "link.txt").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.txt")
    (tmp_path / "dirlink").symlink_to(corpus.parent)
    return {
        "same path": (corpus, corpus),
        "symlink": (tmp_path / "link.txt", corpus),
        "symlink input": (corpus, tmp_path / "link.txt"),
        "relative path": (Path(os.path.relpath(corpus)), corpus),
        "dot-dot path": (corpus.parent / ".." / "data" / "corpus.txt", corpus),
        "hard link": (tmp_path / "hard.txt", corpus),
        "linked folder": (tmp_path / "dirlink" / "corpus.txt", corpus),
    }


@pytest.mark.parametrize(
    "case",
    ["same path", "symlink", "symlink input", "relative path", "dot-dot path", "hard link", "linked folder"],
)
def test_output_onto_input_refused(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    output, source = _aliases(tmp_path)[case]
    with pytest.raises(OutputError) as info:
        refuse_overwrite(output, [tmp_path / "other.txt", source])
    assert info.value.exit_code == EXIT_OUTPUT
    assert str(output) in str(info.value) and str(source) in str(info.value)
    assert "\n" not in str(info.value)
    assert (tmp_path / "data" / "corpus.txt").read_text() == "hello world\n"
    record("outputs onto inputs: asr.outputs.refuse_overwrite", "OutputError")


def test_distinct_output_accepted(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("x")
    refuse_overwrite(tmp_path / "out.txt", [source, tmp_path / "missing.txt"])
    (tmp_path / "copy.txt").write_text("x")  # same content, another file
    refuse_overwrite(tmp_path / "copy.txt", [source])


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    target.chmod(0o640)
    write_text_atomic(target, "second ü\n")
    assert target.read_text(encoding="utf-8") == "second ü\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_through_symlink_replaces_target(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_atomic_write_creates_parent_folders(tmp_path):
    write_text_atomic(tmp_path / "a" / "b" / "out.txt", "x")
    assert (tmp_path / "a" / "b" / "out.txt").read_text() == "x"


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old contents")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputError, match=r"out\.txt: cannot write \(No space left on device\)"):
        write_text_atomic(target, "new contents")
    assert target.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    record("outputs: full disk during an atomic write", "OutputError, old file intact")


def test_orphaned_temporary_removed_by_next_write(tmp_path):
    orphan = tmp_path / ".out.txt.abc123.tmp"
    orphan.write_text("half")
    write_text_atomic(tmp_path / "out.txt", "whole")
    assert not orphan.exists()


def test_write_into_a_file_as_folder_is_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="file/out.txt: cannot write"):
        write_text_atomic(blocker / "out.txt", "x")


def test_check_output_dir_creates_folder(tmp_path):
    assert check_output_dir(tmp_path / "new" / "sub") == tmp_path / "new" / "sub"
    assert (tmp_path / "new" / "sub").is_dir()
    assert list((tmp_path / "new" / "sub").iterdir()) == []


@pytest.mark.parametrize("case", ["is a file", "under a file", "not writable"])
def test_check_output_dir_unwritable(tmp_path, monkeypatch, case):
    (tmp_path / "file").write_text("")
    folder = {"is a file": tmp_path / "file", "under a file": tmp_path / "file" / "sub"}.get(case, tmp_path)
    if case == "not writable":  # root ignores permission bits: make the probe fail as EACCES would
        import tempfile

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError) as info:
        check_output_dir(folder)
    assert info.value.exit_code == EXIT_OUTPUT
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
