#!/usr/bin/env bash
# Commit the evaluation records that the publish workflow's records job staged, and push them
# to the default branch. This runs in a job of its own, on a machine where no project code has
# run: the records job (which ran the evaluator next to the label key) has no write token, and
# this job (which has one) only copies data files and runs git.
#
#   push-records.sh STAGED_DIR BRANCH
#
# STAGED_DIR holds submissions/<benchmark>/<entry>/records/<board>.json files (and the changes
# reports of rescorings, submissions/changes/<board>.json) and nothing else; a file that
# already exists in the checkout is never overwritten. Git hooks are off,
# and the token ($GITHUB_TOKEN) reaches git through a credential helper that reads the
# environment, so it is never on a command line. A push refused because the branch moved is
# retried after a rebase (records are new files, so only a second record of the same entry
# and board can conflict, and then the job fails rather than overwrite).
set -euo pipefail

staged="${1:?usage: push-records.sh STAGED_DIR BRANCH}"
branch="${2:?usage: push-records.sh STAGED_DIR BRANCH}"
record='^submissions/[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*/records/[a-z0-9][a-z0-9._-]*\.json$'
# A rescoring's changes report (leaderboard rescore) is staged with the records.
report='^submissions/changes/[a-z0-9][a-z0-9._-]*\.json$'
attempts=5

git config core.hooksPath /dev/null
git config user.name "github-actions[bot]"
git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
# Single quotes: the helper text holds the variable's name; the shell git starts for it
# expands the value from the environment.
# shellcheck disable=SC2016
git config credential.helper \
  '!f() { test "$1" = get && echo username=x-access-token && echo "password=${GITHUB_TOKEN}"; }; f'

odd=$(cd "$staged" && find . -mindepth 1 ! -type d ! -type f -print -quit)
if [ -n "$odd" ]; then
  echo "::error::the records artifact holds something that is not a plain file: $odd" >&2
  exit 1
fi

added=()
while IFS= read -r -d '' path; do
  path="${path#./}"
  if ! [[ "$path" =~ $record || "$path" =~ $report ]]; then
    echo "::error::not a record path, refusing the artifact: $path" >&2
    exit 1
  fi
  if [ -e "$path" ]; then
    echo "already recorded, left as it is: $path"
    continue
  fi
  mkdir -p "$(dirname "$path")"
  cp -- "$staged/$path" "$path"
  added+=("$path")
done < <(cd "$staged" && find . -type f -print0 | sort -z)

if [ "${#added[@]}" -eq 0 ]; then
  echo "no new records"
  echo "commit=$(git rev-parse HEAD)" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 0
fi

git add -- "${added[@]}"
git commit --quiet -m "Record evaluations of new entries [skip ci]"
for attempt in $(seq "$attempts"); do
  if git push --quiet origin "HEAD:refs/heads/$branch"; then
    echo "pushed ${#added[@]} record(s) on attempt $attempt"
    echo "commit=$(git rev-parse HEAD)" >> "${GITHUB_OUTPUT:-/dev/null}"
    exit 0
  fi
  echo "the push was refused (has $branch moved?): rebasing on it and trying again"
  git fetch --quiet origin "$branch"
  if ! git rebase --quiet FETCH_HEAD; then
    git rebase --abort
    echo "::error::the records conflict with $branch (recorded twice?); nothing was pushed" >&2
    exit 1
  fi
  sleep $((attempt * 2))
done
echo "::error::could not push the records after $attempts attempts" >&2
exit 1
