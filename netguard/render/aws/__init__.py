"""AWS security-group targets: aws-cfn (CloudFormation), terraform (Terraform JSON) and aws-api
(EC2 API request bodies).

All three serialise one :class:`~netguard.render.aws.plan.AwsPlan` made by
:func:`~netguard.render.aws.plan.plan_security_groups`, so they cannot disagree about which
groups and rules exist. Importing this package registers the three renderers.
"""

from netguard.render.aws import api, cfn, terraform
from netguard.render.aws.plan import AwsPlan, plan_security_groups

__all__ = ["AwsPlan", "api", "cfn", "plan_security_groups", "terraform"]
