"""What the operators, sensors and example DAGs share: the task mixin and the XCom keys."""
