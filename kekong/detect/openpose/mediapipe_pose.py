"""OpenPose keypoints from mediapipe's bundled models (pose, hands, face mesh).

mediapipe's pose model finds one person per call, so several people are found by masking
out each person found (their segmentation, dilated) and looking again. A later find must be a
plausible person: not upside down, not a fraction of the first one's size, and not overlapping
anyone found before (seen otherwise: a person in the astronaut's helmet, next to her masked body).
Hands are looked for in the whole image and again in a crop around each body wrist, scaled up, so
hands too small for the whole-image search are found.
"""

from __future__ import annotations

import cv2
import numpy as np

from kekong.detect import mp_models
from kekong.detect.openpose.face_table import MESH_TO_OPENPOSE_FACE
from kekong.detect.openpose.keypoints import (
    BODY_POINTS,
    HAND_POINTS,
    Person,
    PoseResult,
    empty,
)

# OpenPose body index → mediapipe pose landmark index (neck is the shoulders' midpoint).
MP_FOR_OPENPOSE = {
    0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28,
    11: 23, 12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7,
}
NECK, RIGHT_WRIST, LEFT_WRIST, NOSE = 1, 4, 7, 0
MASK_FILL = 127  # grey painted over a person already found
MIN_KEYPOINTS = 4  # fewer visible body keypoints than this is not a person
MIN_RELATIVE_SIZE = 0.25  # a later person's skeleton (box diagonal) at least this share of the first one's
MAX_OVERLAP = 0.1  # a later person's padded box may lie at most this share on people found before
HAND_CROP = 256  # side a crop around a wrist is scaled to for the hand model


def _landmarks(result_landmarks: object, count: int) -> np.ndarray:
    """mediapipe landmarks → (count, 3) array of x, y, visibility."""
    points = np.zeros((count, 3), np.float32)
    for i, lm in enumerate(result_landmarks.landmark[:count]):  # type: ignore[attr-defined]
        points[i] = (lm.x, lm.y, getattr(lm, "visibility", 1.0) or 1.0)
    return points


def body_from_mediapipe(landmarks: np.ndarray, min_visibility: float) -> np.ndarray:
    """33 mediapipe pose landmarks → 18 OpenPose body keypoints (NaN where not visible)."""
    body = empty(BODY_POINTS)
    for op, mp_index in MP_FOR_OPENPOSE.items():
        body[op] = landmarks[mp_index]
    shoulders = landmarks[[11, 12]]
    body[NECK] = (*shoulders[:, :2].mean(axis=0), shoulders[:, 2].min())
    hidden = (body[:, 2] < min_visibility) | np.any((body[:, :2] < 0) | (body[:, :2] > 1), axis=1)
    body[hidden] = np.nan
    return body


def detect_bodies(image: np.ndarray, max_people: int, min_visibility: float) -> list[Person]:
    """Find up to `max_people` bodies by detecting, masking out, and detecting again."""
    work = image.copy()
    masked = np.zeros(image.shape[:2], bool)
    people: list[Person] = []
    for _ in range(max_people):
        result = mp_models.pose().process(work)
        if result.pose_landmarks is None:
            break
        body = body_from_mediapipe(_landmarks(result.pose_landmarks, 33), min_visibility)
        visible = body[~np.isnan(body[:, 0]), :2]
        if (len(visible) < MIN_KEYPOINTS or _duplicate(body, people)
                or _mostly_masked(visible, masked) or (people and not _plausible(body, people, masked))):
            break
        people.append(Person(body=body))
        masked |= _mask_out(work, result.segmentation_mask, body)
    return people


def _box(points: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """x0, y0, x1, y1 of normalised points, grown by `pad` × the longer side."""
    low, high = points.min(axis=0), points.max(axis=0)
    grow = pad * float(max(*(high - low), 1e-3))
    return np.array([*(low - grow), *(high + grow)])


def _diagonal(points: np.ndarray, w: int, h: int) -> float:
    return float(np.hypot(*(np.ptp(points, axis=0) * (w, h))))


def _plausible(body: np.ndarray, people: list[Person], masked: np.ndarray) -> bool:
    """A person found after the first: upright, at least MIN_RELATIVE_SIZE of the first one's
    skeleton, and its box (padded as a found person's mask is) at most MAX_OVERLAP on the area
    of the people found before."""
    if _upside_down(body):
        return False
    h, w = masked.shape
    visible = body[~np.isnan(body[:, 0]), :2]
    first = people[0].body
    first_points = first[~np.isnan(first[:, 0]), :2] if first is not None else visible
    if _diagonal(visible, w, h) < MIN_RELATIVE_SIZE * _diagonal(first_points, w, h):
        return False
    x0, y0, x1, y1 = np.clip(_box(visible, 0.15) * (w, h, w, h), 0, (w - 1, h - 1, w - 1, h - 1)).astype(int)
    return bool(masked[y0:y1 + 1, x0:x1 + 1].mean() <= MAX_OVERLAP)


def _upside_down(body: np.ndarray) -> bool:
    """Head below the hips: on a second look, pose models hallucinate such people from clutter
    (seen on two astronauts side by side); a real first person may still be upside down."""
    head, hips = body[[0, 14, 15], 1], body[[8, 11], 1]
    if np.all(np.isnan(head)) or np.all(np.isnan(hips)):
        return False
    return bool(np.nanmin(head) > np.nanmax(hips))


def _mostly_masked(points: np.ndarray, masked: np.ndarray) -> bool:
    """A 'person' found on the grey we painted over earlier people is a phantom."""
    h, w = masked.shape
    cols = np.clip((points[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip((points[:, 1] * h).astype(int), 0, h - 1)
    return bool(masked[rows, cols].mean() > 0.3)


def _duplicate(body: np.ndarray, people: list[Person]) -> bool:
    """A detection whose neck or nose sits on a person already found is that person again."""
    for person in people:
        for index in (NECK, NOSE):
            a, b = body[index, :2], person.point(index)
            if b is not None and not np.isnan(a[0]) and np.hypot(*(a - b)) < 0.03:
                return True
    return False


def _mask_out(work: np.ndarray, segmentation: np.ndarray | None, body: np.ndarray) -> np.ndarray:
    """Paint a found person grey so the next pose call looks elsewhere; return the area."""
    h, w = work.shape[:2]
    if segmentation is not None:
        mask = np.greater(np.asarray(segmentation), 0.5).astype(np.uint8)
    else:
        mask = np.zeros((h, w), np.uint8)
    points = body[~np.isnan(body[:, 0]), :2] * (w, h)
    if len(points):
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        pad = 0.15 * max(x1 - x0, y1 - y0, 1)
        cv2.rectangle(mask, (int(x0 - pad), int(y0 - pad)), (int(x1 + pad), int(y1 + pad)), 1, -1)
    size = max(3, int(0.02 * max(h, w)) | 1)
    mask = cv2.dilate(mask, np.ones((size, size), np.uint8))
    # cv2.copyTo: 0.3 ms at 512², where `work[mask > 0] = MASK_FILL` (boolean indexing) took 5 ms
    cv2.copyTo(np.full_like(work, MASK_FILL), mask, work)
    return mask.astype(bool)


def detect_hands(image: np.ndarray, solution: mp_models.Solution | None = None) -> list[tuple[np.ndarray, str]]:
    """Every hand: (21, 3) keypoints and the side it belongs to on the person ('left'/'right').

    mediapipe labels handedness as if the image were mirrored (a selfie camera), so on an
    ordinary photo its "Left" is the person's right hand.
    """
    result = (solution or mp_models.hands()).process(image)
    if not result.multi_hand_landmarks:
        return []
    hands = []
    for landmarks, handedness in zip(result.multi_hand_landmarks, result.multi_handedness,
                                     strict=True):
        points = _landmarks(landmarks, HAND_POINTS)
        points[:, 2] = handedness.classification[0].score
        label = handedness.classification[0].label.lower()
        hands.append((points, "right" if label == "left" else "left"))
    return hands


def wrist_crop(body: np.ndarray, wrist: int, w: int, h: int) -> tuple[int, int, int] | None:
    """The square (left, top, side in pixels) around a body wrist where its hand must be: 2.4 ×
    the forearm (a hand is about 0.75 of it) or a third of the shoulders, at least 5% of the image."""
    elbow = {RIGHT_WRIST: 3, LEFT_WRIST: 6}[wrist]
    if np.isnan(body[wrist, 0]):
        return None
    centre = body[wrist, :2] * (w, h)
    lengths = [0.05 * min(w, h)]
    if not np.isnan(body[elbow, 0]):
        lengths.append(1.2 * float(np.hypot(*(centre - body[elbow, :2] * (w, h)))))
    if not np.isnan(body[2, 0]) and not np.isnan(body[5, 0]):
        lengths.append(0.33 * float(np.hypot(*((body[2, :2] - body[5, :2]) * (w, h)))))
    half = max(lengths)
    return round(float(centre[0]) - half), round(float(centre[1]) - half), max(8, round(2 * half))


def hands_at_wrists(image: np.ndarray, people: list[Person]) -> list[tuple[np.ndarray, str]]:
    """Hands found in a crop around each body wrist, scaled to HAND_CROP px (black beyond the image),
    in the whole image's normalised coordinates; only the hand whose wrist is nearest the body's."""
    h, w = image.shape[:2]
    found = []
    for person in people:
        if person.body is None:
            continue
        for wrist in (RIGHT_WRIST, LEFT_WRIST):
            square = wrist_crop(person.body, wrist, w, h)
            if square is None:
                continue
            left, top, side = square
            crop = np.zeros((side, side, 3), np.uint8)
            x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
            if x1 <= x0 or y1 <= y0:
                continue
            crop[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
            scaled = cv2.resize(crop, (HAND_CROP, HAND_CROP),
                                interpolation=cv2.INTER_CUBIC if side < HAND_CROP else cv2.INTER_AREA)
            hands = detect_hands(scaled, mp_models.hands(2))
            if not hands:
                continue
            for points, _side in hands:  # crop → image coordinates
                points[:, 0] = (left + points[:, 0] * side) / w
                points[:, 1] = (top + points[:, 1] * side) / h
            body_wrist = person.body[wrist, :2]
            points, side_label = min(hands, key=lambda hand: float(np.hypot(*(hand[0][0, :2] - body_wrist))))
            if float(np.hypot(*((points[0, :2] - body_wrist) * (w, h)))) <= side / 2:
                found.append((points, side_label))
    return found


def merge_hands(whole: list[tuple[np.ndarray, str]], cropped: list[tuple[np.ndarray, str]]
                ) -> list[tuple[np.ndarray, str]]:
    """The hands of both searches, each once: a cropped find replaces a whole-image hand whose wrist
    is within a third of its span (it was seen larger), and two crops of one hand count once."""
    merged = list(whole)
    for points, side in cropped:
        span = float(np.ptp(points[:, :2], axis=0).max())
        same = [i for i, (other, _) in enumerate(merged)
                if float(np.hypot(*(other[0, :2] - points[0, :2]))) < span / 3]
        for index in reversed(same):
            del merged[index]
        merged.append((points, side))
    return merged


def detect_faces(image: np.ndarray) -> list[np.ndarray]:
    """Every face as 70 OpenPose face keypoints, from the 478-point mesh."""
    result = mp_models.face_mesh().process(image)
    faces = []
    for landmarks in result.multi_face_landmarks or []:
        mesh = np.array([(lm.x, lm.y) for lm in landmarks.landmark], np.float32)
        face = np.ones((len(MESH_TO_OPENPOSE_FACE), 3), np.float32)
        face[:, :2] = mesh[list(MESH_TO_OPENPOSE_FACE)]
        faces.append(face)
    return faces


def _attach_hands(people: list[Person], hands: list[tuple[np.ndarray, str]]) -> None:
    """Give each hand to the person whose wrist is nearest; the mediapipe side breaks ties and
    is used alone when no body wrist is near (hands without a body get a person of their own)."""
    for points, side in hands:
        wrist = points[0, :2]
        span = float(np.ptp(points[:, :2], axis=0).max())
        best: tuple[float, Person, str] | None = None
        for person in people:
            for slot, index in (("right", RIGHT_WRIST), ("left", LEFT_WRIST)):
                body_wrist = person.point(index)
                if body_wrist is None or getattr(person, f"{slot}_hand") is not None:
                    continue
                distance = float(np.hypot(*(wrist - body_wrist))) + (0 if slot == side else 1e-3)
                if distance < 1.5 * span and (best is None or distance < best[0]):
                    best = (distance, person, slot)
        if best is not None:
            setattr(best[1], f"{best[2]}_hand", points)
        else:
            people.append(Person(**{f"{side}_hand": points}))


def _attach_faces(people: list[Person], faces: list[np.ndarray]) -> None:
    """Give each face to the person whose nose is nearest (inside the face's box)."""
    for face in faces:
        low, high = face[:, :2].min(axis=0), face[:, :2].max(axis=0)
        owner = None
        for person in people:
            nose = person.point(NOSE)
            if person.face is None and nose is not None and np.all((nose >= low) & (nose <= high)):
                owner = person
                break
        if owner is None:
            people.append(Person(face=face))
        else:
            owner.face = face


def detect_pose(image: np.ndarray, body: bool = True, hands: bool = False, face: bool = False,
                max_people: int = 4, min_visibility: float = 0.5) -> PoseResult:
    """OpenPose keypoints of everyone in an RGB image (normalised coordinates)."""
    h, w = image.shape[:2]
    people = detect_bodies(image, max_people, min_visibility) if body else []
    if hands:
        _attach_hands(people, merge_hands(detect_hands(image), hands_at_wrists(image, people)))
    if face:
        _attach_faces(people, detect_faces(image))
    return PoseResult(people=people, width=w, height=h)
