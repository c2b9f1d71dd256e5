"""The AutoModel facade: scikit-learn style search, training and export.

Modules: `estimator` (`AutoModel`: parameters, checks, dispatch), one module per task family
(`supervised`: classification and regression on numeric arrays; `few_shot`: the learner
candidates and their ensemble; `similarity`), the user's raw data (`raw_data`: search, refit
and export for `tables` (DataFrames, dicts of columns, CSV files), `text` (raw strings) and
`image_folder` (folders of images at any size)), `inputs` (what the input is, reading and
checking arrays), `preprocessing` (the in-graph preprocessing of arrays), `progress` (the
per-trial progress lines).

Tables in detail: `column_types` (inference and overrides), `table_inputs` (raw rows to
per-column arrays), `table_statistics` (one streamed pass), `table_layers` (missing numbers,
piecewise-linear and periodic encodings, dates), `table_preprocessing` (the decoder and the
trial's encodings), `table_models` (the search space and builder), `targets` (labels and
values). Text: `text_vocabulary`, `text_models`. Images: `image_models`.
"""

from tfmeta.automodel.estimator import AutoModel

__all__ = ["AutoModel"]
