from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="RetrieveForm")


@_attrs_define
class RetrieveForm:
    """
    Attributes:
        image (File): The photo to caption (JPEG/PNG/WebP/GIF/BMP)
        top_k (int | None | Unset): Concepts to retrieve (default 2).
        min_score (float | None | Unset): Similarity floor (default REPIC_RETRIEVAL__MIN_SCORE).
    """

    image: File
    top_k: int | None | Unset = UNSET
    min_score: float | None | Unset = UNSET
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

        retrieve_form = cls(
            image=image,
            top_k=top_k,
            min_score=min_score,
        )

        retrieve_form.additional_properties = d
        return retrieve_form

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
