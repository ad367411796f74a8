"""The 70-point OpenPose face from mediapipe's 478-point face mesh: a fixed index table.

OpenPose's face is the 68-point dlib layout plus two pupils. Sides are the person's own
(the "right" eyebrow/eye appear on the image's left for a person facing the camera).
Mesh indices were chosen as the mesh vertices nearest each dlib point, symmetric pairs
mirrored (e.g. 127 ↔ 356); pupils are the iris centres of refine_landmarks (468, 473).
"""

JAW = (127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356)
RIGHT_BROW = (70, 63, 105, 66, 107)  # outer → inner
LEFT_BROW = (336, 296, 334, 293, 300)  # inner → outer
NOSE_BRIDGE = (168, 197, 5, 4)  # top → tip
NOSE_BOTTOM = (98, 97, 2, 326, 327)
RIGHT_EYE = (33, 160, 158, 133, 153, 144)  # outer corner, upper lid ×2, inner corner, lower ×2
LEFT_EYE = (362, 385, 387, 263, 373, 380)  # inner corner, upper lid ×2, outer corner, lower ×2
OUTER_LIPS = (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91)
INNER_LIPS = (78, 81, 13, 311, 308, 402, 14, 178)
PUPILS = (468, 473)  # right, left

MESH_TO_OPENPOSE_FACE = (
    JAW + RIGHT_BROW + LEFT_BROW + NOSE_BRIDGE + NOSE_BOTTOM + RIGHT_EYE + LEFT_EYE
    + OUTER_LIPS + INNER_LIPS + PUPILS
)
assert len(MESH_TO_OPENPOSE_FACE) == 70
