#!/usr/bin/env bash
# Post a pull-request comment, or update the one posted before, found by a hidden marker on its first line.
# One comment per pull request (and marker) is kept up to date in place instead of piling up. Only a comment
# written by COMMENT_AUTHOR is ever updated: anyone can write a comment that starts with the marker.
#
#   upsert-comment.sh BODY_FILE
#
# Environment: GH_TOKEN (pull-requests: write), GITHUB_REPOSITORY (owner/name), PR_NUMBER,
# MARKER (default "<!-- reconciler-plan -->"), COMMENT_AUTHOR (the login that owns GH_TOKEN; default
# "github-actions[bot]", the author of comments made with the workflow's GITHUB_TOKEN). Needs the GitHub CLI (`gh`), which GitHub's runners have.
set -euo pipefail
body_file=${1:?usage: upsert-comment.sh BODY_FILE}
marker=${MARKER:-"<!-- reconciler-plan -->"}
author=${COMMENT_AUTHOR:-"github-actions[bot]"}
: "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
: "${PR_NUMBER:?PR_NUMBER is not set (not a pull_request event?)}"
case "$marker" in
  *'"'* | *'\'*) echo "upsert-comment.sh: MARKER must not contain quotes or backslashes" >&2; exit 1 ;;
esac
if ! [[ "$author" =~ ^[A-Za-z0-9][A-Za-z0-9-]*(\[bot\])?$ ]]; then
  echo "upsert-comment.sh: COMMENT_AUTHOR must be a GitHub login (letters, digits, '-', optional [bot])" >&2
  exit 1
fi

message=$(mktemp)
trap 'rm -f "$message"' EXIT
{ printf '%s\n' "$marker"; cat "$body_file"; } > "$message"

# The first of our comments (oldest first): written by $author and starting with the marker; gh pages
# through every comment of the pull request.
existing=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
  --jq ".[] | select(.user.login == \"$author\" and (.body | startswith(\"$marker\"))) | .id" | head -n 1)

if [ -n "$existing" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$existing" -F "body=@$message" > /dev/null
  echo "Updated the plan comment $existing on pull request #$PR_NUMBER."
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" -F "body=@$message" > /dev/null
  echo "Posted the plan comment on pull request #$PR_NUMBER."
fi
