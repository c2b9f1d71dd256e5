"""Raw text in, a class or a value out: the text search space and its model builders.

The model takes raw strings: a Keras `TextVectorization` adapted on the training text lives
inside it. The search chooses among three families that suit different amounts of text:

- `"tfidf"`: bag of unigrams and bigrams with TF-IDF weights, then a linear or one-hidden-layer
  head (strong on short texts and small data sets, as TF-IDF + logistic regression is);
- `"cnn"`: token embeddings, a 1-D convolution and global max pooling;
- `"bigru"`: token embeddings and a bidirectional GRU;

with the learning rate, dropout, weight decay and batch size.

Example:

>>> text = TextVocabulary.adapt(train_texts)
>>> space = text_space(rows=len(train_texts))
>>> model = build_text_model(text, space, initial_text_architectures(space)[0], outputs=2, task="classification")
>>> model.predict(np.array(["great food", "slow service"], dtype=object))
"""

from __future__ import annotations

import keras

from tfmeta.automodel.table_models import batch_sizes, compile_for, head
from tfmeta.automodel.text_vocabulary import TextVocabulary
from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas.space import Architecture, Decision, SearchSpace

TEXT_MODELS = ("tfidf", "cnn", "bigru")

#: The first trials of a text search: TF-IDF with a linear head, and a convolution (two families,
#: so that the refit ensemble averages unlike models).
INITIAL_TEXT_CHOICES = (
    {"text_model": "tfidf", "hidden_units": 0, "dropout": 0.2, "learning_rate": 3e-3, "weight_decay": 0.0},
    {"text_model": "cnn", "hidden_units": 0, "dropout": 0.2, "learning_rate": 3e-3, "weight_decay": 0.0},
)


def text_space(rows: int, name: str = "text") -> SearchSpace:
    """The text search space: model family, hidden width, training settings."""
    return SearchSpace(
        [
            Decision("text_model", TEXT_MODELS),
            Decision("hidden_units", (0, 64, 256)),
            Decision("dropout", (0.0, 0.2, 0.5)),
            Decision("learning_rate", (1e-3, 3e-3, 1e-2)),
            Decision("weight_decay", (0.0, 1e-4, 1e-3)),
            Decision("batch_size", batch_sizes(rows)),
        ],
        name=name,
        kind="text",
    )


def initial_text_architectures(space: SearchSpace) -> list[Architecture]:
    """`INITIAL_TEXT_CHOICES` in `space` (the middle batch size)."""
    return [space.from_dict({d.name: choices.get(d.name, d.choices[len(d.choices) // 2]) for d in space.decisions})
            for choices in INITIAL_TEXT_CHOICES]


def build_text_model(text: TextVocabulary, space: SearchSpace, arch: Architecture, outputs: int, task: str,
                     input_name: str = "text", target_mean: float = 0.0, target_std: float = 1.0) -> keras.Model:
    """Raw strings -> the trial's text model -> head, compiled."""
    choices = space.validate(arch).as_dict()
    inputs = keras.Input(shape=(), dtype="string", name=input_name)
    family = choices["text_model"]
    if family == "tfidf":
        hidden = text.tfidf()(inputs)
    else:
        tokens = text.tokens()(inputs)
        size = max(2, len([t for t in text.vocabulary if " " not in t]) + 2)
        hidden = keras.layers.Embedding(size, 64, name="embedding")(tokens)
        if family == "cnn":
            hidden = keras.layers.Conv1D(128, 5, padding="same", activation="relu", name="conv")(hidden)
            hidden = keras.layers.GlobalMaxPooling1D(name="pool")(hidden)
        else:
            hidden = keras.layers.Bidirectional(keras.layers.GRU(32), name="bigru")(hidden)
    if choices["dropout"]:
        hidden = keras.layers.Dropout(choices["dropout"], name="dropout")(hidden)
    if choices["hidden_units"]:
        hidden = keras.layers.Dense(choices["hidden_units"], activation="relu", name="hidden")(hidden)
    model = FunctionalModel(inputs, head(hidden, outputs, task, target_mean, target_std), name="text_model")
    return compile_for(model, choices, task)
