from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="ConceptCreateForm")


@_attrs_define
class ConceptCreateForm:
    """
    Attributes:
        name (str): e.g. `bo` or `<bo>`
        images (list[File]): 1-10 reference photos
        info (str | Unset):  Default: ''.
        category (None | str | Unset):
        display_name (None | str | Unset): Shown to the model instead of the name, e.g. `Iron Man`
    """

    name: str
    images: list[File]
    info: str | Unset = ""
    category: None | str | Unset = UNSET
    display_name: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        images = []
        for images_item_data in self.images:
            images_item = images_item_data.to_tuple()

            images.append(images_item)

        info = self.info

        category: None | str | Unset
        if isinstance(self.category, Unset):
            category = UNSET
        else:
            category = self.category

        display_name: None | str | Unset
        if isinstance(self.display_name, Unset):
            display_name = UNSET
        else:
            display_name = self.display_name

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
                "images": images,
            }
        )
        if info is not UNSET:
            field_dict["info"] = info
        if category is not UNSET:
            field_dict["category"] = category
        if display_name is not UNSET:
            field_dict["display_name"] = display_name

        return field_dict

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("name", (None, str(self.name).encode(), "text/plain")))

        for images_item_element in self.images:
            files.append(("images", images_item_element.to_tuple()))

        if not isinstance(self.info, Unset):
            files.append(("info", (None, str(self.info).encode(), "text/plain")))

        if not isinstance(self.category, Unset):
            if isinstance(self.category, str):
                files.append(("category", (None, str(self.category).encode(), "text/plain")))
            else:
                files.append(("category", (None, str(self.category).encode(), "text/plain")))

        if not isinstance(self.display_name, Unset):
            if isinstance(self.display_name, str):
                files.append(("display_name", (None, str(self.display_name).encode(), "text/plain")))
            else:
                files.append(("display_name", (None, str(self.display_name).encode(), "text/plain")))

        for prop_name, prop in self.additional_properties.items():
            files.append((prop_name, (None, str(prop).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        images = []
        _images = d.pop("images")
        for images_item_data in _images:
            images_item = File(payload=BytesIO(images_item_data))

            images.append(images_item)

        info = d.pop("info", UNSET)

        def _parse_category(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        category = _parse_category(d.pop("category", UNSET))

        def _parse_display_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        display_name = _parse_display_name(d.pop("display_name", UNSET))

        concept_create_form = cls(
            name=name,
            images=images,
            info=info,
            category=category,
            display_name=display_name,
        )

        concept_create_form.additional_properties = d
        return concept_create_form

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
