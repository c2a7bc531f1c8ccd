from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from .. import types
from ..models.prompt_style import PromptStyle, check_prompt_style
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="CaptionForm")


@_attrs_define
class CaptionForm:
    """
    Attributes:
        image (File): The photo to caption (JPEG/PNG/WebP/GIF/BMP)
        top_k (int | None | Unset): Concepts to retrieve (default 2).
        min_score (float | None | Unset): Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE).
        concept_ids (list[int] | None | Unset): Skip retrieval: caption with exactly these concepts (yours).
        instruction (None | str | Unset): Replaces "Give a personalized caption of this image."; may be a question such
            as "What is <bo> doing?".
        max_tokens (int | None | Unset):
        prompt_style (PromptStyle | Unset): ``repic`` for RePIC/RAP fine-tunes; ``zero_shot`` for a plain Qwen2.5-VL.
        stream (bool | Unset): Answer `text/event-stream`: the caption as it is written. Default: False.
        keep (bool | None | Unset): Keep this caption and its photo for corrections (`GET /captions`); omitted: your
            `keep_captions` setting (off unless you turned it on).
    """

    image: File
    top_k: int | None | Unset = UNSET
    min_score: float | None | Unset = UNSET
    concept_ids: list[int] | None | Unset = UNSET
    instruction: None | str | Unset = UNSET
    max_tokens: int | None | Unset = UNSET
    prompt_style: PromptStyle | Unset = UNSET
    stream: bool | Unset = False
    keep: bool | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        image = self.image.to_tuple()

        top_k: int | None | Unset
        if isinstance(self.top_k, Unset):
            top_k = UNSET
        else:
            top_k = self.top_k

        min_score: float | None | Unset
        if isinstance(self.min_score, Unset):
            min_score = UNSET
        else:
            min_score = self.min_score

        concept_ids: list[int] | None | Unset
        if isinstance(self.concept_ids, Unset):
            concept_ids = UNSET
        elif isinstance(self.concept_ids, list):
            concept_ids = self.concept_ids

        else:
            concept_ids = self.concept_ids

        instruction: None | str | Unset
        if isinstance(self.instruction, Unset):
            instruction = UNSET
        else:
            instruction = self.instruction

        max_tokens: int | None | Unset
        if isinstance(self.max_tokens, Unset):
            max_tokens = UNSET
        else:
            max_tokens = self.max_tokens

        prompt_style: str | Unset = UNSET
        if not isinstance(self.prompt_style, Unset):
            prompt_style = self.prompt_style

        stream = self.stream

        keep: bool | None | Unset
        if isinstance(self.keep, Unset):
            keep = UNSET
        else:
            keep = self.keep

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "image": image,
            }
        )
        if top_k is not UNSET:
            field_dict["top_k"] = top_k
        if min_score is not UNSET:
            field_dict["min_score"] = min_score
        if concept_ids is not UNSET:
            field_dict["concept_ids"] = concept_ids
        if instruction is not UNSET:
            field_dict["instruction"] = instruction
        if max_tokens is not UNSET:
            field_dict["max_tokens"] = max_tokens
        if prompt_style is not UNSET:
            field_dict["prompt_style"] = prompt_style
        if stream is not UNSET:
            field_dict["stream"] = stream
        if keep is not UNSET:
            field_dict["keep"] = keep

        return field_dict

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("image", self.image.to_tuple()))

        if not isinstance(self.top_k, Unset):
            if isinstance(self.top_k, int):
                files.append(("top_k", (None, str(self.top_k).encode(), "text/plain")))
            else:
                files.append(("top_k", (None, str(self.top_k).encode(), "text/plain")))

        if not isinstance(self.min_score, Unset):
            if isinstance(self.min_score, float):
                files.append(("min_score", (None, str(self.min_score).encode(), "text/plain")))
            else:
                files.append(("min_score", (None, str(self.min_score).encode(), "text/plain")))

        if not isinstance(self.concept_ids, Unset):
            if isinstance(self.concept_ids, list):
                for concept_ids_type_0_item_element in self.concept_ids:
                    files.append(("concept_ids", (None, str(concept_ids_type_0_item_element).encode(), "text/plain")))
            else:
                files.append(("concept_ids", (None, str(self.concept_ids).encode(), "text/plain")))

        if not isinstance(self.instruction, Unset):
            if isinstance(self.instruction, str):
                files.append(("instruction", (None, str(self.instruction).encode(), "text/plain")))
            else:
                files.append(("instruction", (None, str(self.instruction).encode(), "text/plain")))

        if not isinstance(self.max_tokens, Unset):
            if isinstance(self.max_tokens, int):
                files.append(("max_tokens", (None, str(self.max_tokens).encode(), "text/plain")))
            else:
                files.append(("max_tokens", (None, str(self.max_tokens).encode(), "text/plain")))

        if not isinstance(self.prompt_style, Unset):
            files.append(("prompt_style", (None, str(self.prompt_style).encode(), "text/plain")))

        if not isinstance(self.stream, Unset):
            files.append(("stream", (None, str(self.stream).encode(), "text/plain")))

        if not isinstance(self.keep, Unset):
            if isinstance(self.keep, bool):
                files.append(("keep", (None, str(self.keep).encode(), "text/plain")))
            else:
                files.append(("keep", (None, str(self.keep).encode(), "text/plain")))

        for prop_name, prop in self.additional_properties.items():
            files.append((prop_name, (None, str(prop).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        image = File(payload=BytesIO(d.pop("image")))

        def _parse_top_k(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        top_k = _parse_top_k(d.pop("top_k", UNSET))

        def _parse_min_score(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        min_score = _parse_min_score(d.pop("min_score", UNSET))

        def _parse_concept_ids(data: object) -> list[int] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                concept_ids_type_0 = cast(list[int], data)

                return concept_ids_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None | Unset, data)

        concept_ids = _parse_concept_ids(d.pop("concept_ids", UNSET))

        def _parse_instruction(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        instruction = _parse_instruction(d.pop("instruction", UNSET))

        def _parse_max_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_tokens = _parse_max_tokens(d.pop("max_tokens", UNSET))

        _prompt_style = d.pop("prompt_style", UNSET)
        prompt_style: PromptStyle | Unset
        if isinstance(_prompt_style, Unset):
            prompt_style = UNSET
        else:
            prompt_style = check_prompt_style(_prompt_style)

        stream = d.pop("stream", UNSET)

        def _parse_keep(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        keep = _parse_keep(d.pop("keep", UNSET))

        caption_form = cls(
            image=image,
            top_k=top_k,
            min_score=min_score,
            concept_ids=concept_ids,
            instruction=instruction,
            max_tokens=max_tokens,
            prompt_style=prompt_style,
            stream=stream,
            keep=keep,
        )

        caption_form.additional_properties = d
        return caption_form

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
