"""Operations that change portfolio state: one public function per operation, one transaction each."""
