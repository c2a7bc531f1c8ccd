from typing import Literal

PromptStyle = Literal["repic", "zero_shot"]

PROMPT_STYLE_VALUES: set[PromptStyle] = {
    "repic",
    "zero_shot",
}


def check_prompt_style(value: str) -> PromptStyle:
    if value in PROMPT_STYLE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {PROMPT_STYLE_VALUES!r}")
