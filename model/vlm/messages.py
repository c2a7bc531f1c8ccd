"""RePIC prompts as Hugging Face chat messages, rendered and encoded by a Qwen2.5-VL processor.

The processor's chat template turns each image part into
``<|vision_start|><|image_pad|><|vision_end|>`` and the processor then expands every
``<|image_pad|>`` into one token per merged 28x28 patch of that image, so the encoded length is
what the model (and a vLLM server given the same pixel budget) really sees.
"""

from __future__ import annotations

from typing import Any

from transformers.image_utils import SizeDict

from model.prompt import ImagePart, RepicPrompt


def to_hf_messages(prompt: RepicPrompt) -> list[dict[str, Any]]:
    """The system message and the one interleaved user turn, with images as PIL images.

    Content parts are ``{"type": "image", "image": PIL.Image}`` and
    ``{"type": "text", "text": ...}`` in the prompt's order (demonstrations first, query last).
    """
    user: list[dict[str, Any]] = [
        {"type": "image", "image": part.image.to_pil()}
        if isinstance(part, ImagePart)
        else {"type": "text", "text": part.text}
        for part in prompt.parts
    ]
    return [
        {"role": "system", "content": [{"type": "text", "text": prompt.system}]},
        {"role": "user", "content": user},
    ]


def render_prompt(prompt: RepicPrompt, processor: Any) -> str:
    """The chat-template text of ``prompt`` up to the assistant turn, one pad per image."""
    return _render(to_hf_messages(prompt), processor)


def encode_prompt(prompt: RepicPrompt, processor: Any) -> Any:
    """The processor's model inputs (``input_ids``, ``pixel_values``, ``image_grid_thw``...).

    Images are resized by the processor's own pixel budget (its ``max_pixels``).
    """
    messages = to_hf_messages(prompt)
    images = [part["image"] for part in messages[-1]["content"] if part["type"] == "image"]
    return processor(
        text=[_render(messages, processor)], images=images or None, return_tensors="pt"
    )


def set_pixel_budget(processor: Any, max_pixels: int) -> None:
    """Make ``processor`` resize every image to at most ``max_pixels`` (vLLM's ``max_pixels``).

    The checkpoints ship a budget of 16384 visual tokens per image; RePIC used 1024.
    """
    image_processor = processor.image_processor
    image_processor.size = SizeDict(
        shortest_edge=min(image_processor.size.shortest_edge, max_pixels),
        longest_edge=max_pixels,
    )


def count_prompt_tokens(prompt: RepicPrompt, processor: Any) -> int:
    """Number of prompt tokens, visual tokens included (vLLM reports it as ``prompt_tokens``)."""
    return int(encode_prompt(prompt, processor)["input_ids"].shape[-1])


def _render(messages: list[dict[str, Any]], processor: Any) -> str:
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(text, str):
        raise TypeError(f"the chat template rendered {type(text).__name__}, expected text")
    return text
