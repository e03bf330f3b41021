"""The CDK app's templates deployed into an AWS emulator: moto's CloudFormation in server mode, its gaps bridged.

- ``gaps``: what moto's CloudFormation lacks for these templates (resource types, and CloudFormation
  behaviour such as rollback and ``RetainExceptOnCreate``), listed in one table at its top, and the
  models and patches that bridge each;
- ``server``: ``python -m infra.aws.emulator.server --port N``, moto's server with the gaps installed;
- ``deploy``: a deployer as ``cdk deploy`` does it (bootstrap stand-in, file assets, template URL,
  stack creation, every resource checked) and ``cdk destroy``;
- ``invoke``: one deployed Lambda function run once, in a subprocess, with its deployed code and
  environment.

``tests/integration/test_aws_deployment.py`` drives all of it.
"""
