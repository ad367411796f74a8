"""The installation contract: one OpenCV distribution, pinned torch, mediapipe with its models."""

from importlib import metadata
from pathlib import Path

OPENCV_DISTRIBUTIONS = (
    "opencv-python", "opencv-python-headless", "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


def test_exactly_one_opencv_distribution_is_installed():
    installed = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            metadata.version(name)
            installed.append(name)
        except metadata.PackageNotFoundError:
            pass
    assert installed == ["opencv-contrib-python"]


def test_torch_is_the_pinned_cpu_build_and_torchvision_is_absent():
    assert metadata.version("torch").startswith("2.13.0")
    try:
        metadata.version("torchvision")
        raise AssertionError("torchvision must not be installed: it does not import beside torch")
    except metadata.PackageNotFoundError:
        pass


def test_mediapipe_wheel_carries_the_models_we_use():
    import mediapipe

    root = Path(mediapipe.__file__).parent / "modules"
    for model in ("pose_landmark/pose_landmark_full.tflite", "pose_detection/pose_detection.tflite",
                  "hand_landmark/hand_landmark_full.tflite",
                  "face_landmark/face_landmark_with_attention.tflite",
                  "selfie_segmentation/selfie_segmentation.tflite"):
        assert (root / model).is_file(), model
