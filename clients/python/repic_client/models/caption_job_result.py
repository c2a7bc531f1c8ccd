from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.caption_job_result_status import CaptionJobResultStatus, check_caption_job_result_status
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.caption_public import CaptionPublic
    from ..models.problem import Problem


T = TypeVar("T", bound="CaptionJobResult")


@_attrs_define
class CaptionJobResult:
    """
    Attributes:
        index (int): Position of the photo in the submission (0-based).
        filename (str):
        status (CaptionJobResultStatus):
        caption (CaptionPublic | None | Unset): The result when `done`.
        problem (None | Problem | Unset): Why the photo failed, when `failed`.
    """

    index: int
    filename: str
    status: CaptionJobResultStatus
    caption: CaptionPublic | None | Unset = UNSET
    problem: None | Problem | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.caption_public import CaptionPublic  # noqa: PLC0415
        from ..models.problem import Problem  # noqa: PLC0415

        index = self.index

        filename = self.filename

        status: str = self.status

        caption: dict[str, Any] | None | Unset
        if isinstance(self.caption, Unset):
            caption = UNSET
        elif isinstance(self.caption, CaptionPublic):
            caption = self.caption.to_dict()
        else:
            caption = self.caption

        problem: dict[str, Any] | None | Unset
        if isinstance(self.problem, Unset):
            problem = UNSET
        elif isinstance(self.problem, Problem):
            problem = self.problem.to_dict()
        else:
            problem = self.problem

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "index": index,
                "filename": filename,
                "status": status,
            }
        )
        if caption is not UNSET:
            field_dict["caption"] = caption
        if problem is not UNSET:
            field_dict["problem"] = problem

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.caption_public import CaptionPublic  # noqa: PLC0415
        from ..models.problem import Problem  # noqa: PLC0415

        d = dict(src_dict)
        index = d.pop("index")

        filename = d.pop("filename")

        status = check_caption_job_result_status(d.pop("status"))

        def _parse_caption(data: object) -> CaptionPublic | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                caption_type_0 = CaptionPublic.from_dict(data)

                return caption_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CaptionPublic | None | Unset, data)

        caption = _parse_caption(d.pop("caption", UNSET))

        def _parse_problem(data: object) -> None | Problem | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                problem_type_0 = Problem.from_dict(data)

                return problem_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Problem | Unset, data)

        problem = _parse_problem(d.pop("problem", UNSET))

        caption_job_result = cls(
            index=index,
            filename=filename,
            status=status,
            caption=caption,
            problem=problem,
        )

        caption_job_result.additional_properties = d
        return caption_job_result

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
