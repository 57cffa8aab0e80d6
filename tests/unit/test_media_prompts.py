"""Images and audio on the prompt side: seeded synthetic files (the same bytes for the same seed,
different for every prompt and image), dataset rows that name files (relative to the dataset),
data: and http(s) URLs, and every bad file as one line naming the file and its row."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest
from PIL import Image

from loadtest.config import RunConfig
from loadtest.errors import ConfigError, DatasetError
from loadtest.prompts.attach import with_media
from loadtest.prompts.audio import synthetic_wav, wav_seconds
from loadtest.prompts.images import synthetic_image
from loadtest.prompts.sources import load_prompts


def test_synthetic_images_are_seeded_per_run_prompt_and_image():
    a = synthetic_image(7, 3, 1, (64, 48), "png")
    assert a == synthetic_image(7, 3, 1, (64, 48), "png")
    assert len({a, synthetic_image(8, 3, 1, (64, 48), "png"), synthetic_image(7, 4, 1, (64, 48), "png"),
                synthetic_image(7, 3, 2, (64, 48), "png")}) == 4
    with Image.open(io.BytesIO(a)) as im:
        assert im.format == "PNG" and im.size == (64, 48) and im.mode == "RGB"
    with Image.open(io.BytesIO(synthetic_image(7, 3, 1, (64, 48), "jpeg"))) as im:
        assert im.format == "JPEG" and im.size == (64, 48)


def test_image_size_parses_and_refuses():
    import argparse

    from loadtest.cli.argtypes import image_size

    assert image_size("640x480") == (640, 480) and image_size(" 32X16 ") == (32, 16)
    for bad in ("640", "0x10", "10x-1", "axb", "9000x10"):
        with pytest.raises(argparse.ArgumentTypeError):
            image_size(bad)


def test_synthetic_audio_is_16khz_mono_pcm16_of_exact_length_and_seeded():
    data = synthetic_wav(0, 5, 2.5)
    assert data == synthetic_wav(0, 5, 2.5) and data != synthetic_wav(0, 6, 2.5) != synthetic_wav(1, 5, 2.5)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 40000)
    assert wav_seconds(data) == 2.5


def _dataset(tmp_path, rows):
    path = tmp_path / "data" / "rows.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dataset_images_relative_paths_data_urls_and_remote_urls(tmp_path):
    png = synthetic_image(0, 0, 0, (16, 16), "png")
    (tmp_path / "data" / "img").mkdir(parents=True)
    (tmp_path / "data" / "img" / "a.png").write_bytes(png)
    inline = "data:image/png;base64," + base64.b64encode(png).decode()
    path = _dataset(tmp_path, [
        {"prompt": "one", "image": "img/a.png"},
        {"prompt": "two", "image_url": {"url": inline}, "images": ["img/a.png", "https://example.org/x.jpg"]},
        {"prompt": "three"},
        {"image": "img/a.png"},  # no text: the image alone is the prompt
    ])
    one, two, three, four = load_prompts(str(path))
    assert one.media.images == ("data:image/png;base64," + base64.b64encode(png).decode(),)
    assert one.media.image_bytes == len(png)
    assert two.media.images[0] == inline and two.media.images[2] == "https://example.org/x.jpg"
    assert two.media.image_bytes is None  # a remote image's size is not known to the client
    assert three.media is None and four.text == "" and len(four.media.images) == 1


@pytest.mark.parametrize("row, says", [
    ({"prompt": "x", "image": "missing.png"}, "row 2: cannot read image file"),
    ({"prompt": "x", "image": "notes.txt"}, "row 2: "),
    ({"prompt": "x", "images": "a.png"}, "row 2: 'images' must be a list"),
    ({"prompt": "x", "image": "data:image/png;base64,@@@"}, "row 2: bad base64"),
    ({"prompt": "x", "audio": "missing.wav"}, "row 2: cannot read audio file"),
    ({"prompt": "x", "audio": "notes.txt"}, "row 2: "),
])
def test_bad_media_files_are_one_line_naming_file_and_row(tmp_path, row, says):
    path = _dataset(tmp_path, [{"prompt": "fine"}, row])
    (path.parent / "notes.txt").write_text("not media at all\n" * 10)
    with pytest.raises(DatasetError) as err:
        load_prompts(str(path))
    text = str(err.value)
    assert says in text and str(path) in text and "\n" not in text
    name = (row.get("image") or row.get("audio") or "")
    if name.endswith((".png", ".txt", ".wav")):
        assert name in text


def test_dataset_audio_duration_and_synthetic_audio_for_rows_without(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "clip.wav").write_bytes(synthetic_wav(3, 0, 1.25))
    path = _dataset(tmp_path, [{"audio": "clip.wav"}, {"prompt": "text only"}])
    prompts = load_prompts(str(path))
    assert prompts[0].media.audio.seconds == 1.25 and prompts[0].media.audio.mime == "audio/wav"
    cfg = RunConfig(command="single", base_url="http://x/v1", model=None, api="transcriptions", audio_seconds=0.5, seed=9)
    sent = with_media(cfg, prompts)
    assert sent[0].media.audio.filename == "clip.wav" and sent[0].media.audio.seconds == 1.25
    assert sent[1].media.audio.seconds == 0.5 and sent[1].media.audio.data == synthetic_wav(9, 1, 0.5)


def test_images_option_appends_seeded_images_and_other_apis_refuse_them(tmp_path):
    prompts = load_prompts("builtin")[:3]
    cfg = RunConfig(command="single", base_url="http://x/v1", model=None, images=2, image_size=(32, 32),
                    image_format="jpeg", seed=4)
    sent = with_media(cfg, prompts)
    assert [len(p.media.images) for p in sent] == [2, 2, 2]
    assert sent[1].media.images[1].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(sent[1].media.images[1].split(",", 1)[1]) == synthetic_image(4, 1, 1, (32, 32), "jpeg")
    assert with_media(RunConfig(command="single", base_url="http://x/v1", model=None), prompts) is prompts
    png = synthetic_image(0, 0, 0, (8, 8), "png")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.png").write_bytes(png)
    path = _dataset(tmp_path, [{"prompt": "x", "image": "a.png"}])
    with pytest.raises(ConfigError, match="only --api chat"):
        with_media(RunConfig(command="single", base_url="http://x/v1", model=None, api="completions",
                             dataset=str(path)), load_prompts(str(path)))
