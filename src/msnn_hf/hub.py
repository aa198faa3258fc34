"""The Hub side of msnn_hf under one name: result records, model cards and publishing.

Each role has its own module; this one re-exports their public names (``from msnn_hf import hub`` keeps working)
and runs the ``msnn-push`` command as ``python -m msnn_hf.hub``:

* `msnn_hf.records` — read and check a trainer's result record (`load_result`, `result_value`, `ResultsError`);
* `msnn_hf.cards` — render and validate a model card from a card spec and a record (`render_card`,
  `validate_card`, `load_card_spec`);
* `msnn_hf.publishing` — check a checkpoint folder and upload what users need (`checkpoint_files`,
  `prepare_checkpoint_for_hub`, `push_checkpoint`, `main` = ``msnn-push``).
"""

from __future__ import annotations

from .cards import *  # noqa: F403
from .cards import __all__ as _cards_all
from .publishing import *  # noqa: F403
from .publishing import __all__ as _publishing_all
from .publishing import main
from .records import *  # noqa: F403
from .records import __all__ as _records_all

__all__ = [*_records_all, *_cards_all, *_publishing_all]

if __name__ == "__main__":
    raise SystemExit(main())
