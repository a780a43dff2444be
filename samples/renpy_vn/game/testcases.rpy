## Automated runs of Lighthouse (`renpy samples/renpy_vn test NAME`), as the tests drive it.
## Each step waits for what the player would see (`until`), not for a count of clicks, so the runs
## hold on every engine version whatever its timing. `until "text"` also clicks the text, at its
## centre (`pos`): 8.3.4 on Python 3.13 fails to pick a random point in it. `move ... pattern` only
## waits for the text.

## The story, back to the menu, the same choice again (replayed), back again, the other choice (a
## new branch), then a save, an autosave and a load: each event is sent once. The autosave is
## asked for twice, a second apart: Ren'Py skips one asked for while its background autosave (made
## at each choice) is still running.
testcase branches:
    click until "Climb the stairs" pos (0.5, 0.5)
    click until label lamp
    run Rollback() until "Climb the stairs" pos (0.5, 0.5)
    click until label lamp
    run Rollback() until "Wait for morning" pos (0.5, 0.5)
    click until move (0.5, 0.5) pattern "Next time, then."
    run FileSave(1, confirm=False)
    pause 1.0
    $ renpy.force_autosave(block=True)
    pause 1.0
    $ renpy.force_autosave(block=True)
    pause 0.5
    run FileLoad(1, confirm=False)
    pause 1.0
    $ renpy.quit()

## In a new process, the save that `branches` made: what was sent before the save is not sent again.
testcase load_again:
    pause 0.5
    run FileLoad(1, confirm=False)
    pause 1.0
    click
    pause 0.5
    $ renpy.quit()

## The script is reloaded at the menu, as Shift+R does while a creator writes it; then play goes on.
testcase reload:
    click until move (0.5, 0.5) pattern "Climb the stairs"
    $ renpy.reload_script()
    click until "Climb the stairs" pos (0.5, 0.5)
    click until label lamp
    $ renpy.quit()

## The player turns sharing off in the preference playhooks gives creators, then plays on.
testcase preference:
    click until move (0.5, 0.5) pattern "Climb the stairs"
    run Show("playhooks_preference")
    pause 1.0
    click until "No" pos (0.5, 0.5)
    run Hide("playhooks_preference")
    click until "Climb the stairs" pos (0.5, 0.5)
    click until label lamp
    pause 0.5
    $ renpy.quit()

## The window loses focus for two seconds (as the system would tell it), then has it again:
## those seconds are not playtime.
testcase focus:
    click
    $ import pygame_sdl2
    $ pygame_sdl2.event.set_allowed(pygame_sdl2.ACTIVEEVENT)
    $ pygame_sdl2.event.post(pygame_sdl2.event.Event(pygame_sdl2.ACTIVEEVENT, state=2, gain=0))
    pause 2.0
    $ pygame_sdl2.event.post(pygame_sdl2.event.Event(pygame_sdl2.ACTIVEEVENT, state=2, gain=1))
    pause 1.0
    $ renpy.quit()

## Play on, until something outside ends the process (the tests kill it, as a crash would).
testcase linger:
    click
    pause 4.0
    pause 4.0
    pause 4.0
    pause 4.0
    pause 4.0
    $ renpy.quit()

## Start, and quit at once: what a crashed run left is sent now.
testcase relaunch:
    pause 1.0
    $ renpy.quit()
