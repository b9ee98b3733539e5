"""Every "auto" is settled before a run starts, and a resume keeps what its run chose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifecycle_support import make_images
from ssl_core import ConfigError
from ssl_core.config import resolve
from ssl_core.run_info import RunInfo
from ssl_core.train.settle import keep_resumed_choices, settle

pytest.importorskip("ssl_dino")


def dino_config(out: Path, **values: object):
    return resolve(
        {
            "out": str(out),
            "data": str(out),
            "model": "torchvision/resnet18",
            "method": "dino",
            **values,
        }
    )


def test_a_resume_keeps_the_choices_of_its_run_though_the_data_changed(tmp_path):
    """A resumed DINO run whose data set has since grown past an output_dim bucket keeps the
    softmax size its checkpoint holds, and the local view size."""
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "method_args": {"output_dim": 4096, "hidden_dim": 2048},
                "transform_args": {"image_size": [64, 64], "local_image_size": [32, 32]},
            }
        )
    )
    resumed, notes = keep_resumed_choices(dino_config(tmp_path, resume=True))
    assert resumed.method_args.output_dim == 4096
    assert resumed.transform_args.image_size == (64, 64)
    assert resumed.transform_args.local_image_size == (32, 32)
    assert "method_args.output_dim auto → 4096 (as in the run being resumed)." in notes
    # 10 images per epoch would have chosen 1024 and 32 px images a 16 px local view
    images = make_images(tmp_path / "images", count=10, side=32)
    run = RunInfo(epochs=1, steps_per_epoch=1, global_batch_size=10)
    settled, _ = settle(resumed, sorted(images.glob("*/*.png")), run)
    assert settled.method_args.output_dim == 4096
    assert settled.transform_args.local_image_size == (32, 32)
    # what the user gave explicitly is not replaced, and a new run chooses anew
    given = dino_config(tmp_path, resume=True, method_args={"output_dim": 512})
    assert keep_resumed_choices(given)[0].method_args.output_dim == 512
    fresh, _ = settle(dino_config(tmp_path), sorted(images.glob("*/*.png")), run)
    assert fresh.method_args.output_dim == 1024
    assert fresh.transform_args.image_size == (32, 32)
    assert fresh.transform_args.local_image_size == (16, 16)


def test_views_that_are_not_whole_patches_are_refused_naming_the_multiple(tmp_path):
    pytest.importorskip("timm")
    images = make_images(tmp_path / "images", count=4, side=32)
    config = dino_config(
        tmp_path,
        model="timm/vit_small_patch14_dinov2",
        transform_args={"image_size": 56},
    )
    run = RunInfo(epochs=1, steps_per_epoch=1, global_batch_size=4)
    with pytest.raises(ConfigError) as info:
        settle(config, sorted(images.glob("*/*.png")), run)
    assert str(info.value) == (
        "timm/vit_small_patch14_dinov2 takes images whose sides are multiples of 14 px, but the "
        "dino transform makes views of 56×56, 32×32: set the view sizes in transform_args "
        "(image_size, and any other size it has) to multiples of 14."
    )
    fixed = dino_config(
        tmp_path,
        model="timm/vit_small_patch14_dinov2",
        transform_args={"image_size": 56, "local_image_size": 28},
    )
    settled, notes = settle(fixed, sorted(images.glob("*/*.png")), run)
    assert settled.backbone.model_args == {"dynamic_img_size": True}
    assert settled.args.model_args == {"dynamic_img_size": True}
    assert notes[0].startswith("model_args dynamic_img_size=true: ")
