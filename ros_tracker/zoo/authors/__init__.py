"""The papers' released checkpoints: read safely, mapped onto the zoo networks, converted.

``reader`` / ``unpickler``: a release file -> its state dict without executing pickled code;
``mapping``: the bookkeeping of one explicit key map; ``hit``, ``hcat``, ``mixformerv2``: the
families' key maps and the authors' test-time settings for their cards; ``convert``: one
release file -> one zoo weights file (``ros-tracker convert``).
"""
