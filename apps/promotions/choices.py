from django.db import models


class PromotionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"  # the policy is met; the alias move and the rollout are being started
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"  # a newer request replaced it, or it waited longer than the policy allows
    EXECUTED = "executed", "Executed"  # the alias moved and the rollout started

    @classmethod
    def final(cls) -> set[str]:
        return {cls.REJECTED, cls.CANCELLED, cls.EXPIRED, cls.EXECUTED}


class ReviewDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
