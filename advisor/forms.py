from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation

from .models import Role, User


class SignupForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Full name")
    email = forms.EmailField()
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                password_validation.validate_password(p1, User(email=data.get("email", ""), role=Role.INVESTOR))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class AssignAdvisorForm(forms.Form):
    advisor = forms.ModelChoiceField(queryset=User.objects.filter(role=Role.ADVISOR), required=False)
