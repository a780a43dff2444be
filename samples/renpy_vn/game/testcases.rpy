## Automated runs of Lighthouse (`renpy samples/renpy_vn test NAME`), as the tests drive it.

## The story, back to the menu, the same choice again (replayed), back again, the other choice (a
## new branch), then a save and a load: each event is sent once.
testcase branches:
    click
    click
    "Climb the stairs"
    click
    run Rollback()
    pause 0.5
    run Rollback()
    pause 0.5
    "Climb the stairs"
    click
    run Rollback()
    pause 0.5
    run Rollback()
    pause 0.5
    "Wait for morning"
    click
    click
    run FileSave(1, confirm=False)
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
