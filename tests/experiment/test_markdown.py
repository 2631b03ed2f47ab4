"""pyrobust.experiment.markdown: one cell's text with the caption's marks, and the caption itself."""

import math
from types import SimpleNamespace

import pandas as pd

from pyrobust.experiment.markdown import cell_text, markdown_table


def cell(mean, std, runs, mark, paper_mean=math.nan):
    return SimpleNamespace(mean=mean, std=std, runs=runs, mark=mark, paper_mean=paper_mean)


def test_cell_text_prints_the_marks_and_the_papers_number():
    assert cell_text(cell(97.2, 0.2, 3, "bold star", 97.3)) == "**97.2 ± 0.2**\\* (97.3)"
    assert cell_text(cell(87.04, math.nan, 1, "dagger")) == "87.0†"
    assert cell_text(cell(64.94, 4.44, 5, "")) == "64.9 ± 4.4"


def test_an_empty_table_has_the_caption_and_says_there_are_no_records():
    text = markdown_table(pd.DataFrame(columns=["dataset", "model"]), pd.DataFrame(), missing=["cifar100"])
    assert "due to backward or forward with the ground-truth T" in text
    assert "No result records were found." in text
    assert text.endswith("- CIFAR-100 (`cifar100`)\n")
