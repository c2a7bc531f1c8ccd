"""Contains all the data models used in inputs/outputs"""

from .api_key_created import ApiKeyCreated
from .api_key_public import ApiKeyPublic
from .api_keys_public import ApiKeysPublic
from .caption_form import CaptionForm
from .caption_job_create_form import CaptionJobCreateForm
from .caption_job_progress import CaptionJobProgress
from .caption_job_public import CaptionJobPublic
from .caption_job_public_status import CaptionJobPublicStatus
from .caption_job_result import CaptionJobResult
from .caption_job_result_status import CaptionJobResultStatus
from .caption_job_results_public import CaptionJobResultsPublic
from .caption_jobs_public import CaptionJobsPublic
from .caption_public import CaptionPublic
from .caption_public_timings_ms import CaptionPublicTimingsMs
from .caption_record_public import CaptionRecordPublic
from .caption_record_public_options import CaptionRecordPublicOptions
from .caption_records_public import CaptionRecordsPublic
from .component_readiness import ComponentReadiness
from .concept_create_form import ConceptCreateForm
from .concept_image_public import ConceptImagePublic
from .concept_images_add_form import ConceptImagesAddForm
from .concept_public import ConceptPublic
from .concept_ref import ConceptRef
from .concept_update import ConceptUpdate
from .concept_used import ConceptUsed
from .concepts_public import ConceptsPublic
from .feedback_create import FeedbackCreate
from .feedback_public import FeedbackPublic
from .field_error import FieldError
from .health import Health
from .history_settings_public import HistorySettingsPublic
from .problem import Problem
from .prompt_style import PromptStyle
from .readiness import Readiness
from .readiness_components import ReadinessComponents
from .retrieval_public import RetrievalPublic
from .retrieval_public_timings_ms import RetrievalPublicTimingsMs
from .retrieve_form import RetrieveForm
from .retrieved_concept_public import RetrievedConceptPublic
from .taught_public import TaughtPublic
from .teach_request import TeachRequest
from .user_create import UserCreate
from .user_deleted import UserDeleted
from .user_public import UserPublic
from .users_public import UsersPublic

__all__ = (
    "ApiKeyCreated",
    "ApiKeyPublic",
    "ApiKeysPublic",
    "CaptionForm",
    "CaptionJobCreateForm",
    "CaptionJobProgress",
    "CaptionJobPublic",
    "CaptionJobPublicStatus",
    "CaptionJobResult",
    "CaptionJobResultsPublic",
    "CaptionJobResultStatus",
    "CaptionJobsPublic",
    "CaptionPublic",
    "CaptionPublicTimingsMs",
    "CaptionRecordPublic",
    "CaptionRecordPublicOptions",
    "CaptionRecordsPublic",
    "ComponentReadiness",
    "ConceptCreateForm",
    "ConceptImagePublic",
    "ConceptImagesAddForm",
    "ConceptPublic",
    "ConceptRef",
    "ConceptsPublic",
    "ConceptUpdate",
    "ConceptUsed",
    "FeedbackCreate",
    "FeedbackPublic",
    "FieldError",
    "Health",
    "HistorySettingsPublic",
    "Problem",
    "PromptStyle",
    "Readiness",
    "ReadinessComponents",
    "RetrievalPublic",
    "RetrievalPublicTimingsMs",
    "RetrievedConceptPublic",
    "RetrieveForm",
    "TaughtPublic",
    "TeachRequest",
    "UserCreate",
    "UserDeleted",
    "UserPublic",
    "UsersPublic",
)
