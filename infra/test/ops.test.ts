/** Every alarm's runbook exists in ops/runbooks/ with the five sections the team agreed on. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ALARM_RUNBOOKS } from '../lib/alarms.ts';
import { REPO_ROOT } from './support.ts';

it('has a runbook per alarm with meaning, confirmation, action, resume and who to tell', () => {
  for (const name of ALARM_RUNBOOKS) {
    const file = join(REPO_ROOT, 'ops', 'runbooks', `${name}.md`);
    assert.ok(existsSync(file), `missing ${file}`);
    const text = readFileSync(file, 'utf8');
    for (const section of ['## What it means', '## How to confirm', '## What to do', '## How to resume or redrive', '## Who to tell']) {
      assert.ok(text.includes(section), `${name}.md lacks "${section}"`);
    }
    assert.match(text, /```bash\n[^`]*aws |psql /, `${name}.md has no concrete command`);
  }
});
