from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.caption_job_public_status import CaptionJobPublicStatus, check_caption_job_public_status

if TYPE_CHECKING:
    from ..models.caption_job_progress import CaptionJobProgress


T = TypeVar("T", bound="CaptionJobPublic")


@_attrs_define
class CaptionJobPublic:
    """
    Attributes:
        id (str):
        status (CaptionJobPublicStatus): `queued` while photos are left to caption, then `done`.
        progress (CaptionJobProgress):
        eta_s (float | None): Seconds left at the pace so far; null before the first photo finishes.
        created_at (datetime.datetime):
        finished_at (datetime.datetime | None):
    """

    id: str
    status: CaptionJobPublicStatus
    progress: CaptionJobProgress
    eta_s: float | None
    created_at: datetime.datetime
    finished_at: datetime.datetime | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        status: str = self.status

        progress = self.progress.to_dict()

        eta_s: float | None
        eta_s = self.eta_s

        created_at = self.created_at.isoformat()

        finished_at: None | str
        if isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "status": status,
                "progress": progress,
                "eta_s": eta_s,
                "created_at": created_at,
                "finished_at": finished_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.caption_job_progress import CaptionJobProgress  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        status = check_caption_job_public_status(d.pop("status"))

        progress = CaptionJobProgress.from_dict(d.pop("progress"))

        def _parse_eta_s(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        eta_s = _parse_eta_s(d.pop("eta_s"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        def _parse_finished_at(data: object) -> datetime.datetime | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None, data)

        finished_at = _parse_finished_at(d.pop("finished_at"))

        caption_job_public = cls(
            id=id,
            status=status,
            progress=progress,
            eta_s=eta_s,
            created_at=created_at,
            finished_at=finished_at,
        )

        caption_job_public.additional_properties = d
        return caption_job_public

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
